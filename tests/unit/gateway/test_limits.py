"""Limits at the gateway: a request outside them is a 400 naming the limit, never a 500, and 5xx bodies name no address.

The limits are the contracts' (gyre_contracts.limits): what the gateway accepts is what every service
decodes. These requests are refused before the bus, so the app here has none connected.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gyre_contracts import GenerationFailed, SamplingParams
from gyre_contracts.limits import METADATA_MAX_BYTES, METADATA_MAX_DEPTH, METADATA_MAX_KEYS
from gyre_gateway.chat.failures import generation_failed
from gyre_gateway.errors import ApiError, error_response
from gyre_gateway.upstream import upstream_failure
from gyre_runtime.generation.openai_compat import OpenAICompatibleBackend

BUS_NOT_CONNECTED = 503  # what a request that passed every check meets here (no bus in unit tests)


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def nested(depth: int) -> str:
    """A JSON object ``depth`` levels deep: ``{"a": {"a": ... 1}}``."""
    return '{"a": ' * depth + "1" + "}" * depth


def post_json(client: TestClient, path: str, body: str) -> Any:
    return client.post(path, content=body, headers={"content-type": "application/json"})


# ---------------------------------------------------------------- document metadata


def test_metadata_of_a_megabyte_is_refused_naming_the_limit(client: TestClient) -> None:
    """The reproduction: 1.1 MB of metadata was copied into every chunk (389 MiB of store for one request)."""
    metadata = {f"key-{i}": "v" * 1000 for i in range(1100)}

    error = error_of(client.post("/v1/documents", json={"text": "hello", "metadata": metadata}))

    assert error["param"] == "metadata" and error["code"] == "invalid_value"
    assert f"1100 keys; at most {METADATA_MAX_KEYS}" in error["message"]


@pytest.mark.parametrize(
    ("metadata", "fragment"),
    [
        ({"notes": "n" * (METADATA_MAX_BYTES + 10)}, f"at most {METADATA_MAX_BYTES} are allowed"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, f"nested more than {METADATA_MAX_DEPTH} levels deep"),
        ({"team": "x" * 2100}, "value team is longer than 2048 characters"),
        ({"": 1}, "must be a string of 1 to 128 characters"),
    ],
    ids=["too-many-bytes", "too-deep", "string-too-long", "empty-key"],
)
def test_metadata_over_a_limit_is_refused_with_the_limit_in_the_message(
    client: TestClient, metadata: dict[str, Any], fragment: str
) -> None:
    error = error_of(client.post("/v1/documents", json={"text": "hello", "metadata": metadata}))
    assert error["param"] == "metadata" and fragment in error["message"], error


def test_metadata_within_the_limits_passes_validation(client: TestClient) -> None:
    metadata = {"team": "docs", "tags": ["a", "b"], "owner": {"name": "Ada", "since": {"year": 2024}}}
    response = client.post("/v1/documents", json={"text": "hello", "metadata": metadata})
    assert response.status_code == BUS_NOT_CONNECTED, response.text


def test_a_json_body_nested_five_thousand_deep_is_a_400_saying_why(client: TestClient) -> None:
    body = '{"text": "hello", "metadata": ' + nested(5000) + "}"

    error = error_of(post_json(client, "/v1/documents", body))

    assert error["code"] == "invalid_json"
    assert "nested too deeply" in error["message"]


@pytest.mark.parametrize("path", ["/v1/search", "/v1/chat/completions", "/v1/feedback", "/v1/embeddings"])
def test_deeply_nested_json_is_a_400_on_every_json_route(client: TestClient, path: str) -> None:
    error = error_of(post_json(client, path, nested(5000)))
    assert error["code"] == "invalid_json" and "nested too deeply" in error["message"]


def test_upload_metadata_nested_five_thousand_deep_is_a_400_not_a_500(client: TestClient) -> None:
    """The reproduction: the upload's metadata field went through json.loads into a RecursionError (500)."""
    response = client.post(
        "/v1/documents/upload", files={"files": ("a.txt", b"hello")}, data={"metadata": nested(5000)}
    )

    error = error_of(response)
    assert error["param"] == "metadata" and error["code"] == "invalid_json"
    assert "nested too deeply" in error["message"]


def test_upload_metadata_over_a_limit_is_refused_counting_the_filename_it_gains(client: TestClient) -> None:
    # 64 keys of the client's own plus the "filename" every uploaded file's metadata gets: one too many.
    metadata = {f"k{i}": i for i in range(METADATA_MAX_KEYS)}
    response = client.post(
        "/v1/documents/upload", files={"files": ("a.txt", b"hello")}, data={"metadata": json.dumps(metadata)}
    )

    error = error_of(response)
    assert error["param"] == "metadata"
    assert f"{METADATA_MAX_KEYS + 1} keys; at most {METADATA_MAX_KEYS}" in error["message"]


# ---------------------------------------------------------------- ids and other fields the events carry


@pytest.mark.parametrize(
    "document_id", ["d" * 257, "line\nbreak", "trailing-newline\n", "tab\there"], ids=["long", "newline", "eol", "tab"]
)
def test_a_document_id_the_events_would_refuse_is_a_400(client: TestClient, document_id: str) -> None:
    error = error_of(client.post("/v1/documents", json={"id": document_id, "text": "hello"}))
    assert error["param"] == "id"


def test_a_document_id_with_spaces_and_slashes_is_still_fine(client: TestClient) -> None:
    response = client.post("/v1/documents", json={"id": "handbook/2026 edition.pdf", "text": "hello"})
    assert response.status_code == BUS_NOT_CONNECTED, response.text


@pytest.mark.parametrize(
    "request_id", ["x" * 129, "has space", "dots.split.subjects", "wild*card", "ends-with-newline\n"]
)
def test_feedback_on_a_request_id_no_answer_can_have_is_a_400(client: TestClient, request_id: str) -> None:
    """request_id ends subject names (generate.stream.<id>): only subject-token characters, at most 128."""
    error = error_of(client.post("/v1/feedback", json={"request_id": request_id, "rating": 1}))
    assert error["param"] == "request_id"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "top_k": 51}, "top_k"),
        ({"query": "q", "filter": {f"k{i}": "v" for i in range(65)}}, "filter"),
        ({"query": "q", "filter": {"k": "v" * 2049}}, "filter.k"),
        ({"query": "q", "filter": {f"k{i}": "v" * 2000 for i in range(5)}}, "filter"),
    ],
    ids=["top-k", "filter-keys", "filter-string", "filter-bytes"],
)
def test_search_limits_are_the_retrieve_events_limits(client: TestClient, body: dict[str, Any], param: str) -> None:
    error = error_of(client.post("/v1/search", json=body))
    assert error["param"] == param, error


@pytest.mark.parametrize(
    "value",
    [2.5, 2.85e16, True, [], [1, "a"], [True], 2**63, [-(2**63) - 1]],
    ids=["float", "big-float", "bool", "empty", "mixed", "bools", "past-64-bits", "list-past-64-bits"],
)
def test_a_filter_value_no_vector_store_can_match_is_a_400_not_a_502(client: TestClient, value: Any) -> None:
    """Found by the gateway fuzzing: the embed service refused these, and the client saw its refusal as a 502."""
    error = error_of(client.post("/v1/search", json={"query": "q", "filter": {"k": value}}))
    assert error["param"] == "filter.k", error


@pytest.mark.parametrize("value", ["docs", 7, ["a", "b"], [1, 2]])
def test_a_filter_value_a_vector_store_can_match_passes_validation(client: TestClient, value: Any) -> None:
    response = client.post("/v1/search", json={"query": "q", "filter": {"k": value}})
    assert response.status_code == BUS_NOT_CONNECTED, response.text


def test_a_stop_sequence_longer_than_the_event_allows_is_a_400(client: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "stop": ["s" * 257]}
    error = error_of(client.post("/v1/chat/completions", json=body))
    assert error["param"] == "stop" and "256" in error["message"]


# ---------------------------------------------------------------- 5xx bodies


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def real_backend_failure() -> tuple[str, str]:
    """What the OpenAI-compatible backend raises for a server that is not there, and that server's address."""
    address = f"127.0.0.1:{closed_port()}"
    backend = OpenAICompatibleBackend(f"http://{address}/v1", "some-model", connect_timeout_s=5.0)
    try:
        with pytest.raises(Exception) as raised:  # whatever it raises is what reaches the client
            async for _ in backend.stream([("user", "hi")], SamplingParams(max_tokens=4)):
                pass
    finally:
        await backend.close()
    exc = raised.value
    # The generate service's wording of a backend failure (handlers.py), which GenerationFailed carries.
    return f"the model failed: {type(exc).__name__}: {exc}", address


async def test_a_502_from_an_openai_backend_failure_names_no_url_or_host() -> None:
    """The reproduction: the backend's base URL reached clients in the 502 body."""
    error_text, address = await real_backend_failure()
    assert address in error_text  # the generate side keeps it, for its logs and the event

    failed = GenerationFailed(tenant="tenant-a", request_id="chatcmpl-1", error=error_text, code="model_failed")
    response = error_response(generation_failed(failed))
    body = json.loads(bytes(response.body))

    assert response.status_code == 502
    message = body["error"]["message"]
    assert address not in message and "http://" not in message and "127.0.0.1" not in message
    assert message.startswith("generation failed: the model failed: GenerationError: cannot reach the OpenAI")
    assert "<internal address>" in message


@pytest.mark.parametrize(
    "error",
    [
        ApiError(502, "backend https://llm.corp.example:8443/v1/chat/completions answered 500"),
        upstream_failure("qdrant at http://10.0.3.7:6333 refused the connection", "embed"),
        ApiError(503, "no route to [fd00::7]:4222 nor nats.internal:4222"),
    ],
    ids=["url", "ipv4-url", "ipv6-and-host-port"],
)
def test_no_5xx_body_carries_an_internal_address(error: ApiError) -> None:
    message = json.loads(bytes(error_response(error).body))["error"]["message"]
    for leaked in ("https://", "http://", "llm.corp", "10.0.3.7", "fd00::7", "nats.internal", "4222", "6333"):
        assert leaked not in message, message


def test_a_4xx_body_keeps_the_clients_own_text_even_when_it_looks_like_an_address() -> None:
    error = ApiError(404, "no document 'http://example.com/page:8080' (for this API key's tenant)")
    message = json.loads(bytes(error_response(error).body))["error"]["message"]
    assert "http://example.com/page:8080" in message


@pytest.mark.parametrize("key", ['say "hi"', "tab\there", "nul\x00"])
def test_a_filter_key_no_vector_store_can_address_is_a_400_not_a_502(client: TestClient, key: str) -> None:
    """Found by the gateway fuzzing: such a key made an invalid JSON path in the store (a 502)."""
    error = error_of(client.post("/v1/search", json={"query": "q", "filter": {key: "x"}}))
    assert error["param"] == "filter", error


@pytest.mark.parametrize("key", ["Author Name", "dc:creator", "$ref", "é"])
def test_a_filter_key_that_is_not_a_plain_name_passes_validation(client: TestClient, key: str) -> None:
    response = client.post("/v1/search", json={"query": "q", "filter": {key: "x"}})
    assert response.status_code == BUS_NOT_CONNECTED, response.text
