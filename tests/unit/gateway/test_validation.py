"""Invalid requests get a 400 in OpenAI's error format naming the field, before the bus is ever needed."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gyre_gateway.app import create_app
from gyre_gateway.body_limit import max_body_bytes
from gyre_gateway.documents.serving import max_document_bytes
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
        ({"messages": USER, "top_k": 0}, "top_k"),
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
        "/v1/embeddings", "/v1/models", "/v1/feedback", "/healthz", "/readyz", "/metrics",
    } <= set(paths)
    assert client.get("/docs").status_code == 200


def test_a_body_declared_larger_than_any_valid_request_is_413_before_it_is_read(tmp_path: Path) -> None:
    app = create_app(load_settings({}, data_dir=str(tmp_path), api_keys="k:t", max_document_chars=10))
    body = b"x" * (max_body_bytes(10) + 1)
    response = TestClient(app, headers={"Authorization": "Bearer k"}).post(
        "/v1/documents", content=body, headers={"Content-Type": "application/json"}
    )
    assert error_of(response, 413)["code"] == "request_too_large"
