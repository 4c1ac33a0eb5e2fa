"""Chat completions without a bus: request -> event mapping, the response, and the SSE stream's chunks."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from gyre_contracts import Citation, GenerationCompleted, GenerationFailed, Timings, TokenDelta, Usage
from gyre_gateway.chat.failures import generation_timeout
from gyre_gateway.chat.protocol import ChatCompletionRequest
from gyre_gateway.chat.request import generation_request
from gyre_gateway.chat.responses import completion_chunk, completion_response, sse_event
from gyre_gateway.chat.serving import StreamMessage, stream_chat_events
from gyre_gateway.errors import ApiError
from gyre_runtime.config import load_settings

REQUEST_ID = "chatcmpl-abc"
CITATION = Citation(number=1, document_id="doc-1", chunk_id="c-1", title="Doc", score=0.9, excerpt="the excerpt")


def completed(answer: str = "Hello world.") -> GenerationCompleted:
    return GenerationCompleted(
        tenant="tenant-a",
        request_id=REQUEST_ID,
        question="hi?",
        answer=answer,
        citations=(CITATION,),
        usage=Usage(prompt_tokens=10, completion_tokens=3, total_tokens=13),
        timings=Timings(retrieval_ms=1.0, time_to_first_token_ms=2.0, total_ms=3.0),
        finish_reason="stop",
        model_version="smollm2:1:abcd",
        prompt_version="rag-v1",
    )


def delta(index: int, text: str) -> TokenDelta:
    return TokenDelta(tenant="tenant-a", request_id=REQUEST_ID, index=index, text=text)


class FakeFollower:
    """What stream_chat_events needs of a GenerationFollower, fed from a list."""

    def __init__(self, messages: list[StreamMessage], error: ApiError | None = None) -> None:
        self.request_id = REQUEST_ID
        self._messages = messages
        self._error = error
        self.closed = False

    async def messages(self) -> AsyncIterator[StreamMessage]:
        for message in self._messages:
            yield message
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        self.closed = True


async def sse_lines(follower: FakeFollower) -> list[str]:
    body = b"".join([part async for part in stream_chat_events(follower, "the-model")])  # type: ignore[arg-type]
    events = body.decode().split("\n\n")
    assert events[-1] == ""
    assert all(e.startswith("data: ") for e in events[:-1])
    return [e.removeprefix("data: ") for e in events[:-1]]


def test_an_sse_event_is_one_data_line_and_a_blank_line() -> None:
    assert sse_event({"a": 1}) == b'data: {"a":1}\n\n'
    assert sse_event("[DONE]") == b"data: [DONE]\n\n"


def test_a_chunk_has_openais_shape() -> None:
    chunk = completion_chunk(REQUEST_ID, 123, "m", {"content": "x"})
    assert chunk == {
        "id": REQUEST_ID,
        "object": "chat.completion.chunk",
        "created": 123,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None, "finish_reason": None}],
    }


def test_the_request_maps_onto_the_event_with_the_callers_tenant() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "model": "smollm2",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}]},
            ],
            "temperature": 0.7,
            "max_completion_tokens": 20,
            "stop": "END",
            "seed": 7,
            "retrieval": False,
            "stream": True,
        }
    )
    event = generation_request("tenant-a", body, REQUEST_ID, load_settings({}, retrieval_top_k=6))
    assert event.tenant == "tenant-a" and event.request_id == REQUEST_ID and event.model == "smollm2"
    assert [(m.role, m.content) for m in event.messages] == [("system", "be brief"), ("user", "hello there")]
    assert event.params.temperature == 0.7 and event.params.max_tokens == 20 and event.params.seed == 7
    assert event.params.stop == ("END",) and event.params.top_p == 1.0
    assert event.retrieval is False and event.top_k == 6 and event.stream is True


def test_unset_max_tokens_takes_the_configured_default() -> None:
    body = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "hi"}]})
    event = generation_request("t", body, REQUEST_ID, load_settings({}, max_new_tokens=99))
    assert event.params.max_tokens == 99 and event.params.temperature == 0.0 and event.stream is False


def test_the_plain_response_carries_answer_usage_model_version_and_citations() -> None:
    response = completion_response(completed(), created=1700000000).model_dump()
    assert response["id"] == REQUEST_ID and response["object"] == "chat.completion"
    assert response["model"] == "smollm2:1:abcd" and response["created"] == 1700000000
    assert response["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello world."}, "finish_reason": "stop",
         "logprobs": None}
    ]
    assert response["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    assert response["citations"] == [
        {"number": 1, "document_id": "doc-1", "chunk_id": "c-1", "title": "Doc", "score": 0.9, "excerpt": "the excerpt"}
    ]


async def test_a_stream_sends_a_chunk_per_delta_then_a_final_chunk_then_done() -> None:
    follower = FakeFollower([delta(0, "Hello"), delta(1, " world"), delta(2, "."), completed()])
    lines = await sse_lines(follower)
    assert lines[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = [json.loads(line) for line in lines[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:3]] == [
        {"role": "assistant", "content": "Hello"}, {"content": " world"}, {"content": "."}
    ]
    assert all(c["id"] == REQUEST_ID and c["model"] == "the-model" for c in chunks[:3])
    final = chunks[3]
    assert final["choices"][0] == {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert final["usage"]["total_tokens"] == 13 and final["model"] == "smollm2:1:abcd"
    assert final["citations"][0]["document_id"] == "doc-1"
    assert follower.closed


async def test_a_lost_delta_is_made_good_from_the_final_answer() -> None:
    lines = await sse_lines(FakeFollower([delta(0, "Hello"), completed("Hello world.")]))
    contents = [json.loads(line)["choices"][0]["delta"].get("content") for line in lines[:-1]]
    assert contents == ["Hello", " world.", None]


async def test_an_answer_without_deltas_still_streams_its_text_with_the_role() -> None:
    lines = await sse_lines(FakeFollower([completed("All at once.")]))
    first = json.loads(lines[0])["choices"][0]["delta"]
    assert first == {"role": "assistant", "content": "All at once."}


async def test_a_failed_generation_ends_the_stream_with_an_error_event() -> None:
    failed = GenerationFailed(tenant="t", request_id=REQUEST_ID, error="model exploded")
    follower = FakeFollower([delta(0, "Hel"), failed])
    lines = await sse_lines(follower)
    error = json.loads(lines[1])["error"]
    assert error["code"] == "generation_failed" and "model exploded" in error["message"]
    assert lines[-1] == "[DONE]" and follower.closed


async def test_a_silent_generator_ends_the_stream_with_a_timeout_error() -> None:
    follower = FakeFollower([delta(0, "Hel")], error=generation_timeout(3.0))
    lines = await sse_lines(follower)
    assert json.loads(lines[1])["error"]["code"] == "timeout"
    assert follower.closed
