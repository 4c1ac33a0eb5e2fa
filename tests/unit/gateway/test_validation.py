"""Invalid requests get a 400 in OpenAI's error format naming the field, before the bus is ever needed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gyre_gateway.app import create_app
from gyre_gateway.body_limit import max_body_bytes
from gyre_gateway.documents.validation import max_document_bytes
from gyre_gateway.errors import field_path, validation_error
from gyre_runtime.config import load_settings

USER = [{"role": "user", "content": "hi"}]


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    error: dict[str, Any] = body["error"]
    return error


def test_field_paths_read_like_the_json_the_client_sent() -> None:
    assert field_path(("body", "messages", 0, "role")) == "messages.0.role"
    assert field_path(("query", "top_k")) == "top_k"


def test_one_message_names_the_first_problem_and_counts_the_rest() -> None:
    error = validation_error(
        [
            {"loc": ("body", "top_k"), "msg": "Input should be less than or equal to 50", "type": "less_than_equal"},
            {"loc": ("body", "query"), "msg": "Field required", "type": "missing"},
        ]
    )
    assert error.status_code == 400 and error.param == "top_k"
    assert error.message == "top_k: Input should be less than or equal to 50 (and 1 more problem)"


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        ({"messages": USER, "temperature": 3}, "temperature"),
        ({"messages": USER, "top_p": 0}, "top_p"),
        ({"messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"messages": USER, "top_k": -1}, "top_k"),
        ({"messages": USER, "top_k": 1001}, "top_k"),
        ({"messages": USER, "temperature": -0.1}, "temperature"),
        ({"messages": USER, "top_p": 1.5}, "top_p"),
        ({"messages": USER, "max_completion_tokens": 0}, "max_completion_tokens"),
        ({"messages": USER, "seed": 1.5}, "seed"),
        ({"messages": USER, "seed": "7"}, "seed"),
        ({"messages": USER, "seed": 2**64}, "seed"),
        ({"messages": USER, "stop": ["a", ""]}, "stop"),
        ({"messages": USER, "stop": 5}, "stop"),
        ({"messages": USER, "prompt_label": "not a label!"}, "prompt_label"),
        ({"messages": USER, "prompt_label": ""}, "prompt_label"),
        ({"messages": USER, "retrieval_top_k": 51}, "retrieval_top_k"),
        ({"messages": USER, "n": 2}, "n"),
        ({"messages": USER, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role"),
        ({"model": "m"}, "messages"),
    ],
)
def test_chat_parameters_out_of_range_are_400(client: TestClient, payload: dict[str, Any], param: str) -> None:
    error = error_of(client.post("/v1/chat/completions", json=payload))
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].startswith(f"{param}:")


def test_a_missing_field_is_named(client: TestClient) -> None:
    error = error_of(client.post("/v1/chat/completions", json={"model": "m"}))
    assert error["message"] == "messages: field required"


def test_a_chat_without_user_text_is_400(client: TestClient) -> None:
    payload = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "  "}]}
    error = error_of(client.post("/v1/chat/completions", json=payload))
    assert error["param"] == "messages" and "user message" in error["message"]


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    error = error_of(response)
    assert error["code"] == "invalid_json" and "not valid JSON" in error["message"]


def test_a_valid_chat_request_passes_validation_and_meets_the_missing_bus(client: TestClient) -> None:
    payload = {"model": "m", "messages": [{"role": "developer", "content": "x"}, *USER], "stop": "END"}
    assert error_of(client.post("/v1/chat/completions", json=payload), 503)["code"] == "bus_unavailable"


@pytest.mark.parametrize(
    ("payload", "param", "fragment"),
    [
        ({}, "text", "exactly one of"),
        ({"text": "a", "content": base64.b64encode(b"a").decode()}, "text", "exactly one of"),
        ({"text": "a", "content_type": "pdf"}, "content_type", "not a media type"),
        ({"content": "***not base64***"}, "content", "base64"),
        ({"text": "   "}, "text", "empty"),
        ({"text": "a", "tenant": "someone-else"}, "tenant", "Extra inputs are not permitted"),
        ({"id": "", "text": "a"}, "id", "at least 1 character"),
        ({"id": "bad\nid", "text": "a"}, "id", "pattern"),
    ],
)
def test_invalid_documents_are_400(client: TestClient, payload: dict[str, Any], param: str, fragment: str) -> None:
    error = error_of(client.post("/v1/documents", json=payload))
    assert error["param"] == param
    assert fragment in error["message"]


def test_a_document_over_the_size_limit_is_413(client: TestClient) -> None:
    limit = client.app.state.service.settings.max_document_chars  # type: ignore[attr-defined]
    error = error_of(client.post("/v1/documents", json={"text": "x" * (limit + 1)}), 413)
    assert error["code"] == "document_too_large" and str(limit) in error["message"]


def test_content_over_the_byte_limit_is_413_and_at_the_limit_passes(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path), api_keys="k:t", max_document_chars=100)
    client = TestClient(create_app(settings), headers={"Authorization": "Bearer k"})
    limit = max_document_bytes(100)
    assert limit == 600  # 6 bytes per character: its base64 still fits the request limit
    at_limit = {"content": base64.b64encode(b"x" * limit).decode(), "content_type": "application/pdf"}
    assert error_of(client.post("/v1/documents", json=at_limit), 503)["code"] == "bus_unavailable"
    over = {"content": base64.b64encode(b"x" * (limit + 1)).decode(), "content_type": "application/pdf"}
    error = error_of(client.post("/v1/documents", json=over), 413)
    assert error["code"] == "document_too_large" and error["param"] == "content" and "600" in error["message"]


@pytest.mark.parametrize(
    "content_type",
    ["Text/Markdown; charset=utf-8", "application/pdf", "text/html", "application/x-unknown-thing",
     "application/octet-stream"],
)
def test_any_media_type_passes_the_gateway_ingest_decides(client: TestClient, content_type: str) -> None:
    payload = {"content": base64.b64encode(b"%PDF-1.7 or # T").decode(), "content_type": content_type}
    assert error_of(client.post("/v1/documents", json=payload), 503)["code"] == "bus_unavailable"


@pytest.mark.parametrize(
    ("payload", "param"),
    [({"query": ""}, "query"), ({"query": "q", "top_k": 0}, "top_k"), ({"query": "q", "top_k": 51}, "top_k")],
)
def test_invalid_searches_are_400(client: TestClient, payload: dict[str, Any], param: str) -> None:
    assert error_of(client.post("/v1/search", json=payload))["param"] == param


@pytest.mark.parametrize("rating", [0, 6, -2, 1.5])
def test_a_rating_outside_thumbs_and_stars_is_400(client: TestClient, rating: float) -> None:
    error = error_of(client.post("/v1/feedback", json={"request_id": "chatcmpl-x", "rating": rating}))
    assert error["param"] == "rating"


def test_a_zero_rating_says_what_ratings_are(client: TestClient) -> None:
    error = error_of(client.post("/v1/feedback", json={"request_id": "chatcmpl-x", "rating": 0}))
    assert "-1 or 1" in error["message"] and "1..5" in error["message"]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [({"input": [1, 2, 3]}, "token arrays"), ({"input": []}, "must not be empty"), ({"input": [""]}, "empty")],
)
def test_invalid_embedding_inputs_are_400(client: TestClient, payload: dict[str, Any], fragment: str) -> None:
    error = error_of(client.post("/v1/embeddings", json=payload))
    assert error["param"] == "input" and fragment in error["message"]


def test_an_unknown_route_is_404_in_the_same_format(client: TestClient) -> None:
    error = error_of(client.get("/v1/nothing-here"), 404)
    assert "/docs" in error["message"]


def test_the_openapi_document_lists_every_endpoint(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/v1/documents", "/v1/documents/upload", "/v1/documents/{document_id}", "/v1/search", "/v1/chat/completions",
        "/v1/embeddings", "/v1/models", "/v1/models/{model}", "/v1/feedback", "/healthz", "/readyz", "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


def test_a_body_declared_larger_than_any_valid_request_is_413_before_it_is_read(tmp_path: Path) -> None:
    app = create_app(load_settings({}, data_dir=str(tmp_path), api_keys="k:t", max_document_chars=10))
    body = b"x" * (max_body_bytes(10) + 1)
    response = TestClient(app, headers={"Authorization": "Bearer k"}).post(
        "/v1/documents", content=body, headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 413)["code"] == "request_too_large"


def test_n_other_than_one_says_only_one_is_supported(client: TestClient) -> None:
    error = error_of(client.post("/v1/chat/completions", json={"messages": USER, "n": 2}))
    assert error["param"] == "n" and "only n=1" in error["message"]


def test_a_value_fitting_no_member_of_a_union_is_one_problem(client: TestClient) -> None:
    error = error_of(client.post("/v1/chat/completions", json={"messages": USER, "stop": 5}))
    assert error["message"] == "stop: Input should be a valid string or Input should be a valid list"


def test_top_k_zero_means_no_cut_and_is_valid(client: TestClient) -> None:
    assert error_of(client.post("/v1/chat/completions", json={"messages": USER, "top_k": 0}), 503)


def limited_client(tmp_path: Path, **settings: Any) -> TestClient:
    app = create_app(load_settings({}, data_dir=str(tmp_path), api_keys="k:t", **settings))
    return TestClient(app, headers={"Authorization": "Bearer k"})


def test_max_tokens_over_the_deployments_limit_is_400(tmp_path: Path) -> None:
    client = limited_client(tmp_path, max_tokens_limit=100)
    error = error_of(client.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 101}))
    assert error["param"] == "max_tokens" and "100" in error["message"] and "GYRE_MAX_TOKENS_LIMIT" in error["message"]
    assert error_of(client.post("/v1/chat/completions", json={"messages": USER, "max_tokens": 100}), 503)


def test_messages_over_the_input_limit_are_400(tmp_path: Path) -> None:
    client = limited_client(tmp_path, max_input_chars=10)
    messages = [{"role": "system", "content": "12345"}, {"role": "user", "content": "678901"}]
    error = error_of(client.post("/v1/chat/completions", json={"messages": messages}))
    assert error["param"] == "messages" and error["code"] == "context_length_exceeded"
    assert "11 characters" in error["message"] and "GYRE_MAX_INPUT_CHARS" in error["message"]


def test_a_bad_prompt_label_header_is_400_naming_the_header(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"messages": USER}, headers={"X-Gyre-Prompt-Label": "a b"})
    assert error_of(response)["param"] == "X-Gyre-Prompt-Label"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/v1/search", "text/plain"), ("/v1/chat/completions", "application/x-www-form-urlencoded"),
     ("/v1/documents", "text/markdown"), ("/v1/documents/upload", "application/json")],
)
def test_a_body_in_a_format_the_route_cannot_read_is_415(client: TestClient, path: str, content_type: str) -> None:
    error = error_of(client.post(path, content=b"{}", headers={"Content-Type": content_type}), 415)
    assert error["code"] == "unsupported_media_type" and content_type in error["message"]


def test_json_with_a_charset_or_a_json_suffix_is_json(client: TestClient) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
        response = client.post("/v1/search", content=b'{"query": "q"}', headers={"Content-Type": content_type})
        assert error_of(response, 503)["code"] == "bus_unavailable"


def test_an_unknown_route_stays_404_whatever_its_body(client: TestClient) -> None:
    response = client.post("/v1/nothing", content=b"x", headers={"Content-Type": "text/plain"})
    assert error_of(response, 404)["code"] == "not_found"


def test_a_wrong_method_is_405_in_the_same_format(client: TestClient) -> None:
    response = client.get("/v1/chat/completions")
    error = error_of(response, 405)
    assert error["code"] == "method_not_allowed" and response.headers["allow"] == "POST"


def test_a_non_document_body_over_the_request_limit_is_413(tmp_path: Path) -> None:
    client = limited_client(tmp_path, max_request_bytes=1000)
    error = error_of(client.post("/v1/chat/completions", json={"messages": USER, "model": "m" * 1000}), 413)
    assert error["code"] == "request_too_large" and "GYRE_MAX_REQUEST_BYTES" in error["message"]
    # The document routes keep their own, larger limit.
    assert error_of(client.post("/v1/documents", json={"text": "x" * 2000}), 503)["code"] == "bus_unavailable"


def test_a_chunked_body_is_counted_as_it_arrives_and_cut_off_at_the_limit(tmp_path: Path) -> None:
    client = limited_client(tmp_path, max_request_bytes=1000)

    def chunks() -> Any:
        yield b'{"query": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    response = client.post("/v1/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert error_of(response, 413)["code"] == "request_too_large"


def test_an_unexpected_failure_is_500_in_the_same_format(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("gyre_gateway.models.api_router.list_models", broken)
    response = TestClient(client.app, headers=dict(client.headers), raise_server_exceptions=False).get("/v1/models")
    error = error_of(response, 500)
    assert error["type"] == "server_error" and error["code"] == "internal_error" and "a bug" not in error["message"]
