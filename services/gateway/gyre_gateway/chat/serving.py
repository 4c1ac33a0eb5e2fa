"""Chat completions: publish a GenerationRequested, follow its stream subject, answer plain or as SSE.

The gateway subscribes to ``generate.stream.<request_id>`` before it publishes the request, so no
token can be missed; the generate service sends TokenDeltas there, then GenerationCompleted or
GenerationFailed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import msgspec
import nats.errors
from nats.aio.subscription import Subscription

from gyre_contracts import (
    ChatMessage,
    Citation,
    EnvelopeError,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    SamplingParams,
    TokenDelta,
    decode_event,
    new_id,
)
from gyre_gateway.chat.protocol import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessageIn,
    Choice,
    CitationOut,
    UsageInfo,
)
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service

log = get_logger()

REQUEST_ID_PREFIX = "chatcmpl-"

StreamMessage: TypeAlias = TokenDelta | GenerationCompleted | GenerationFailed


def message_text(message: ChatMessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content)


def contract_messages(messages: list[ChatMessageIn]) -> tuple[ChatMessage, ...]:
    out = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        out.append(ChatMessage(role=role, content=message_text(message)))
    if not any(m.role == "user" and m.content.strip() for m in out):
        raise ApiError(
            400, "messages must contain a user message with some text", code="invalid_value", param="messages"
        )
    return tuple(out)


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def new_request_id() -> str:
    return f"{REQUEST_ID_PREFIX}{new_id()}"


def generation_request(
    tenant: str, body: ChatCompletionRequest, request_id: str, settings: Settings
) -> GenerationRequested:
    """The event for a validated request; unset sampling fields keep the contract's defaults."""
    defaults = SamplingParams()
    params = SamplingParams(
        max_tokens=body.max_tokens or body.max_completion_tokens or settings.max_new_tokens,
        temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        top_k=defaults.top_k if body.top_k is None else body.top_k,
        seed=body.seed,
        stop=stop_sequences(body.stop),
    )
    return GenerationRequested(
        tenant=tenant,
        request_id=request_id,
        messages=contract_messages(body.messages),
        params=params,
        retrieval=body.retrieval,
        top_k=body.retrieval_top_k or settings.retrieval_top_k,
        model=body.model,
        stream=body.stream,
    )


def citations_out(citations: tuple[Citation, ...]) -> list[CitationOut]:
    return [
        CitationOut(
            number=c.number,
            document_id=c.document_id,
            chunk_id=c.chunk_id,
            title=c.title,
            score=c.score,
            excerpt=c.excerpt,
        )
        for c in citations
    ]


def completion_response(completed: GenerationCompleted, created: int) -> ChatCompletion:
    return ChatCompletion(
        id=completed.request_id,
        created=created,
        model=completed.model_version,
        choices=[Choice(message=AssistantMessage(content=completed.answer), finish_reason=completed.finish_reason)],
        usage=UsageInfo(**msgspec.structs.asdict(completed.usage)),
        citations=citations_out(completed.citations),
    )


def generation_failed(failed: GenerationFailed) -> ApiError:
    return ApiError(502, f"generation failed: {failed.error}", code="generation_failed")


def generation_timeout(timeout_s: float) -> ApiError:
    return ApiError(
        504,
        f"no word from the generate service for {timeout_s:g}s (GYRE_REQUEST_TIMEOUT_S); is `gyre-generate` running?",
        code="timeout",
    )


# --- SSE: OpenAI's chat.completion.chunk stream ---------------------------------------------


def sse_event(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` (or a literal such as ``[DONE]``) and a blank line."""
    payload = data if isinstance(data, str) else msgspec.json.encode(data).decode()
    return f"data: {payload}\n\n".encode()


def completion_chunk(
    request_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        **extra,
    }


def delta_of(text: str, *, first: bool) -> dict[str, Any]:
    """The first chunk names the role, as OpenAI's do."""
    return {"role": "assistant", "content": text} if first else {"content": text}


def final_chunk(completed: GenerationCompleted, created: int) -> dict[str, Any]:
    return completion_chunk(
        completed.request_id,
        created,
        completed.model_version,
        {},
        completed.finish_reason,
        usage=msgspec.structs.asdict(completed.usage),
        citations=[c.model_dump() for c in citations_out(completed.citations)],
    )


# --- Following one generation on the bus -----------------------------------------------------


class GenerationFollower:
    """The subscription to one request's stream subject; opened before the request is published."""

    def __init__(self, service: Service, request: GenerationRequested, *, traceparent: str | None = None) -> None:
        self.service = service
        self.request = request
        self.traceparent = traceparent
        self.timeout_s = service.settings.request_timeout_s
        self._sub: Subscription | None = None

    @property
    def request_id(self) -> str:
        request_id: str = self.request.request_id
        return request_id

    async def start(self) -> None:
        bus = connected(self.service).bus
        self._sub = await bus.nc.subscribe(bus.subject(f"generate.stream.{self.request_id}"))
        try:
            await publish(self.service, self.request, event_id=self.request_id, traceparent=self.traceparent)
        except BaseException:
            await self.close()
            raise
        log.info("generation_requested", request_id=self.request_id, stream=self.request.stream)

    async def close(self) -> None:
        """Idempotent: the stream's end, a disconnect and the response's clean-up may all call it."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def messages(self) -> AsyncIterator[StreamMessage]:
        """Decoded messages until Completed or Failed; a silence longer than the timeout raises 504."""
        assert self._sub is not None, "start() first"
        while True:
            try:
                msg = await self._sub.next_msg(timeout=self.timeout_s)
            except nats.errors.TimeoutError as exc:
                log.warning("generation_timeout", request_id=self.request_id, timeout_s=self.timeout_s)
                raise generation_timeout(self.timeout_s) from exc
            try:
                message: StreamMessage = decode_event(msg.data, StreamMessage, dict(msg.headers or {}))
            except EnvelopeError as exc:
                log.warning("stream_message_undecodable", request_id=self.request_id, error=str(exc))
                continue
            yield message
            if isinstance(message, GenerationCompleted | GenerationFailed):
                return


async def complete_chat(
    service: Service, tenant: str, body: ChatCompletionRequest, *, traceparent: str | None = None
) -> ChatCompletion:
    """Non-streamed: wait for GenerationCompleted and answer one chat.completion."""
    request = generation_request(tenant, body, new_request_id(), service.settings)
    follower = GenerationFollower(service, request, traceparent=traceparent)
    created = int(time.time())
    await follower.start()
    try:
        async for message in follower.messages():
            if isinstance(message, GenerationCompleted):
                return completion_response(message, created)
            if isinstance(message, GenerationFailed):
                raise generation_failed(message)
    finally:
        await follower.close()
    raise AssertionError("unreachable: messages() ends with Completed or Failed")


async def start_chat_stream(
    service: Service, tenant: str, body: ChatCompletionRequest, *, traceparent: str | None = None
) -> GenerationFollower:
    """Publish the request (errors here are still plain HTTP errors); the body follows with stream_chat_events."""
    request = generation_request(tenant, body, new_request_id(), service.settings)
    follower = GenerationFollower(service, request, traceparent=traceparent)
    await follower.start()
    return follower


async def stream_chat_events(follower: GenerationFollower, model: str) -> AsyncIterator[bytes]:
    """SSE body: a chunk per TokenDelta, a final chunk with finish_reason, usage and citations, then [DONE].

    A failure after the response started can only be reported in-band: an ``{"error": ...}`` event,
    which OpenAI's clients raise as an APIError.
    """
    created = int(time.time())
    request_id = follower.request_id
    sent: list[str] = []
    try:
        async for message in follower.messages():
            if isinstance(message, TokenDelta):
                if message.text:
                    delta = delta_of(message.text, first=not sent)
                    yield sse_event(completion_chunk(request_id, created, model, delta))
                    sent.append(message.text)
            elif isinstance(message, GenerationCompleted):
                # Core NATS may drop a delta; the final answer is the truth, so send what is missing.
                streamed = "".join(sent)
                rest = message.answer[len(streamed) :] if message.answer.startswith(streamed) else ""
                if rest or not sent:
                    yield sse_event(completion_chunk(request_id, created, model, delta_of(rest, first=not sent)))
                yield sse_event(final_chunk(message, created))
                log.info("generation_streamed", request_id=request_id, usage=msgspec.structs.asdict(message.usage))
            else:
                log.warning("generation_failed", request_id=request_id, error=message.error)
                yield sse_event(generation_failed(message).body())
        yield sse_event("[DONE]")
    except ApiError as exc:
        yield sse_event(exc.body())
        yield sse_event("[DONE]")
    finally:
        await follower.close()

