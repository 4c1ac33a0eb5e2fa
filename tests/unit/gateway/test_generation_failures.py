"""A GenerationFailed becomes the HTTP error its ``code`` calls for, in OpenAI's error shape.

Plain and streamed requests alike, while no token was sent; once a stream started, only the body's
error event can say it, with the same type and code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gyre_contracts import GenerationFailed, GenerationLoad, TokenDelta
from gyre_contracts.generate import FailureCode
from gyre_gateway.chat.failures import generation_failed
from gyre_gateway.chat.protocol import ChatCompletionRequest
from gyre_gateway.chat.serving import StreamMessage, complete_chat, start_chat, stream_chat_events
from gyre_gateway.errors import ApiError, error_response
from tests.support.fake_bus import FakeNats, fake_service

REQUEST_ID = "chatcmpl-f"


def failed(code: FailureCode, error: str = "what went wrong") -> GenerationFailed:
    return GenerationFailed(tenant="tenant-a", request_id=REQUEST_ID, error=error, code=code)


def response_of(error: ApiError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, JSON body and headers as the client receives them."""
    response = error_response(error)
    return response.status_code, json.loads(bytes(response.body)), dict(response.headers)


# ---------------------------------------------------------------- the mapping


@pytest.mark.parametrize(
    ("code", "status", "error_code", "error_type"),
    [
        ("invalid_request", 400, "invalid_value", "invalid_request_error"),
        ("context_length_exceeded", 400, "context_length_exceeded", "invalid_request_error"),
        ("unknown_prompt_label", 404, "prompt_not_found", "invalid_request_error"),
        ("unknown_model", 404, "model_not_found", "invalid_request_error"),
        ("expired", 503, "request_expired", "server_error"),
        ("retrieval_unavailable", 503, "retrieval_unavailable", "server_error"),
        ("model_failed", 502, "generation_failed", "server_error"),
        ("", 502, "generation_failed", "server_error"),
    ],
)
def test_each_failure_code_has_its_status_code_and_type(
    code: FailureCode, status: int, error_code: str, error_type: str
) -> None:
    got_status, body, _ = response_of(generation_failed(failed(code)))
    assert got_status == status
    assert body["error"]["code"] == error_code and body["error"]["type"] == error_type


@pytest.mark.parametrize(
    "code",
    ["invalid_request", "context_length_exceeded", "unknown_prompt_label", "unknown_model", "expired",
     "retrieval_unavailable", "model_failed", ""],
)
def test_the_message_keeps_the_failures_text(code: FailureCode) -> None:
    _, body, _ = response_of(generation_failed(failed(code, "no prompt label 'canary' for rag")))
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "no prompt label 'canary' for rag" in body["error"]["message"]


def test_a_requesters_mistake_is_told_without_the_server_failure_prefix() -> None:
    error = generation_failed(failed("invalid_request", "max_tokens must be at least 1, not 0"))
    assert error.message == "max_tokens must be at least 1, not 0"


def test_client_failures_name_the_parameter_to_change() -> None:
    assert generation_failed(failed("context_length_exceeded")).param == "messages"
    assert generation_failed(failed("unknown_prompt_label")).param == "prompt_label"
    assert generation_failed(failed("unknown_model")).param == "model"
    assert generation_failed(failed("invalid_request")).param is None  # the text names it; the code does not


@pytest.mark.parametrize(("code", "retry_after"), [("retrieval_unavailable", "1"), ("expired", "2")])
def test_a_passing_unavailability_says_when_to_retry(code: FailureCode, retry_after: str) -> None:
    _, _, headers = response_of(generation_failed(failed(code)))
    assert headers["retry-after"] == retry_after


@pytest.mark.parametrize("code", ["invalid_request", "unknown_model", "model_failed", ""])
def test_failures_a_retry_does_not_cure_carry_no_retry_after(code: FailureCode) -> None:
    assert not (generation_failed(failed(code)).headers or {})


# ---------------------------------------------------------------- the chat paths

USER = [{"role": "user", "content": "hi"}]


def service_with(stream: list[StreamMessage]) -> Any:
    """Room to admit one chat request, then ``stream`` on its stream subject."""
    return fake_service(FakeNats({"gyre.generate.load": GenerationLoad(in_flight=0, capacity=1)}, stream))


def chat_body(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": USER, **fields})


async def test_a_plain_request_answers_a_failure_with_its_codes_status() -> None:
    service = service_with([failed("unknown_model", "no model 'gpt-9'")])
    with pytest.raises(ApiError) as caught:
        await complete_chat(await start_chat(service, "tenant-a", chat_body(model="gpt-9")))
    assert caught.value.status_code == 404 and caught.value.code == "model_not_found"
    assert caught.value.message == "no model 'gpt-9'"


async def test_a_stream_failing_before_its_first_token_is_still_a_plain_error_with_its_codes_status() -> None:
    service = service_with([failed("retrieval_unavailable", "retrieval did not answer in 5s")])
    with pytest.raises(ApiError) as caught:
        await start_chat(service, "tenant-a", chat_body(stream=True))
    assert caught.value.status_code == 503 and caught.value.code == "retrieval_unavailable"
    assert caught.value.headers == {"Retry-After": "1"}


class ListFollower:
    """What stream_chat_events needs of a GenerationFollower, fed from a list."""

    request_id = REQUEST_ID

    def __init__(self, messages: list[StreamMessage]) -> None:
        self._messages = messages

    async def messages(self) -> AsyncIterator[StreamMessage]:
        for message in self._messages:
            yield message

    async def close(self) -> None:
        pass


async def test_a_failure_after_the_stream_started_is_an_error_event_with_the_same_code() -> None:
    # The status (200) is sent already; the error event is all that can carry the code.
    follower = ListFollower([TokenDelta(tenant="t", request_id=REQUEST_ID, index=0, text="Hel"), failed("expired")])
    body = b"".join([part async for part in stream_chat_events(follower, "m")])  # type: ignore[arg-type]
    events = [e.removeprefix("data: ") for e in body.decode().split("\n\n") if e]
    error = json.loads(events[1])["error"]
    assert error["code"] == "request_expired" and error["type"] == "server_error"
    assert events[-1] == "[DONE]"
