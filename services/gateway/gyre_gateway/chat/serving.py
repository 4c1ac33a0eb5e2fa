"""Chat completions: publish a GenerationRequested, follow its stream subject, answer plain or as SSE.

Before publishing, the gateway asks the generate replicas for their load (back-pressure:
backpressure.py). It subscribes to ``generate.stream.<request_id>`` before it publishes the request,
so no token can be missed; the generate service sends TokenDeltas there, then GenerationCompleted or
GenerationFailed. A request whose client leaves, or that times out, is cancelled on the bus.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import anyio
import msgspec
import nats.errors
from nats.aio.subscription import Subscription

from gyre_contracts import (
    ChatMessage,
    Citation,
    EnvelopeError,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    SamplingParams,
    TokenDelta,
    decode_event,
    new_id,
)
from gyre_gateway.chat.backpressure import admit_generation
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
from gyre_gateway.upstream import connected, publish, publish_core
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


def check_request_limits(body: ChatCompletionRequest, settings: Settings) -> None:
    """The limits that depend on settings: 400 naming the parameter."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name)
        if value is not None and value > settings.max_tokens_limit:
            raise ApiError(
                400,
                f"{name}: {value} is over this deployment's limit of {settings.max_tokens_limit} tokens "
                "(GYRE_MAX_TOKENS_LIMIT, the model's context window)",
                code="invalid_value",
                param=name,
            )
    chars = sum(len(message_text(m)) for m in body.messages)
    if chars > settings.max_input_chars:
        raise ApiError(
            400,
            f"messages: {chars} characters in all, the limit is {settings.max_input_chars} (GYRE_MAX_INPUT_CHARS); "
            "shorten the conversation",
            code="context_length_exceeded",
            param="messages",
        )


def generation_request(
    tenant: str, body: ChatCompletionRequest, request_id: str, settings: Settings, *, prompt_label: str | None = None
) -> GenerationRequested:
    """The event for a validated request; unset sampling fields keep the contract's defaults.

    ``prompt_label`` is the ``X-Gyre-Prompt-Label`` header: the body's field wins over it.
    """
    check_request_limits(body, settings)
    defaults = SamplingParams()
    params = SamplingParams(
        max_tokens=body.max_tokens or body.max_completion_tokens or settings.max_new_tokens,
        temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        top_k=defaults.top_k if body.top_k is None else body.top_k,
        seed=body.seed,
        stop=stop_sequences(body.stop),
    )
    event = GenerationRequested(
        tenant=tenant,
        request_id=request_id,
        messages=contract_messages(body.messages),
        params=params,
        retrieval=body.retrieval,
        top_k=body.retrieval_top_k or settings.retrieval_top_k,
        model=body.model,
        stream=body.stream,
    )
    label = body.prompt_label or prompt_label
    return msgspec.structs.replace(event, prompt_label=label) if label else event


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


# Seconds a client should wait before sending a request again that failed for a passing reason.
RETRIEVAL_RETRY_AFTER_S = 1  # the retrieval service restarting or reconnecting: as upstream.py's 503s
EXPIRED_RETRY_AFTER_S = 2  # a generate backlog: as backpressure.py's 429, it drains at a generation's pace

# A failure the requester caused and can fix: (status, code, param). The message is the generate
# service's own text, which already says what to change, so it is passed on without a prefix.
CLIENT_FAILURES: dict[str, tuple[int, str, str | None]] = {
    # The same code the gateway's own range checks use, so a client sees one code whichever side caught it.
    "invalid_request": (400, "invalid_value", None),
    # OpenAI's code and param for a conversation that does not fit; the gateway's own check answers the same.
    "context_length_exceeded": (400, "context_length_exceeded", "messages"),
    "unknown_prompt_label": (404, "prompt_not_found", "prompt_label"),
    "unknown_model": (404, "model_not_found", "model"),
}


def generation_failed(failed: GenerationFailed) -> ApiError:
    """The HTTP error for a GenerationFailed, by its ``code`` (docs/architecture.md).

    The requester's faults are 4xx with the failure's text as the message; the deployment's are 5xx,
    with Retry-After where waiting helps. An unknown code (a publisher older than the codes, or
    newer than this gateway) stays the 502 every failure was before.
    """
    if failed.code in CLIENT_FAILURES:
        status, code, param = CLIENT_FAILURES[failed.code]
        return ApiError(status, failed.error, code=code, param=param)
    if failed.code == "expired":
        # 503, not the contract's suggested 408: a 408 says the *client* was too slow to send its request
        # (RFC 9110), while this one arrived whole and waited in the generate backlog until nobody could
        # still want it. The server was overloaded, the request is fine and may be sent again as is.
        return ApiError(
            503,
            f"generation failed: {failed.error}",
            code="request_expired",
            headers={"Retry-After": str(EXPIRED_RETRY_AFTER_S)},
        )
    if failed.code == "retrieval_unavailable":
        return ApiError(
            503,
            f"generation failed: {failed.error}",
            code="retrieval_unavailable",
            headers={"Retry-After": str(RETRIEVAL_RETRY_AFTER_S)},
        )
    return ApiError(502, f"generation failed: {failed.error}", code="generation_failed")


def generation_timeout(timeout_s: float, *, first: bool = False) -> ApiError:
    if first:
        message = (
            f"no token from the generate service within {timeout_s:g}s (GYRE_FIRST_TOKEN_TIMEOUT_S); "
            "it is busy or down, retry later"
        )
    else:
        message = f"the generate service went silent for {timeout_s:g}s mid-answer (GYRE_REQUEST_TIMEOUT_S)"
    return ApiError(504, message, code="timeout")


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

CLIENT_LEFT = "client disconnected"


class GenerationFollower:
    """The subscription to one request's stream subject; opened before the request is published.

    Closing it before the answer ended (client gone, timeout) also tells the generate service to
    stop: a GenerationCancelRequested on core ``gyre.generate.cancel.<request_id>``.
    """

    def __init__(self, service: Service, request: GenerationRequested, *, traceparent: str | None = None) -> None:
        self.service = service
        self.request = request
        self.traceparent = traceparent
        self.first_timeout_s = service.settings.first_token_timeout_s
        self.timeout_s = service.settings.request_timeout_s
        self.published = False
        self.finished = False  # Completed or Failed seen: nothing left to cancel
        self.cancel_reason = CLIENT_LEFT
        self._sub: Subscription | None = None
        self._first: StreamMessage | None = None
        self._received = 0

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
        self.published = True
        log.info("generation_requested", request_id=self.request_id, stream=self.request.stream)

    async def close(self) -> None:
        """Idempotent: the stream's end, a disconnect and the response's clean-up may all call it."""
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if self.published and not self.finished:
            self.finished = True  # one cancel is enough
            await self._cancel()

    async def _cancel(self) -> None:
        cancel = GenerationCancelRequested(
            tenant=self.request.tenant, request_id=self.request_id, reason=self.cancel_reason
        )
        try:
            await publish_core(
                self.service,
                cancel,
                f"{GenerationCancelRequested.subject}.{self.request_id}",
                traceparent=self.traceparent,
            )
        except Exception as exc:  # the generation then runs to its end; nothing else is lost
            log.warning("generation_cancel_not_sent", request_id=self.request_id, error=f"{type(exc).__name__}: {exc}")
            return
        log.info("generation_cancel_requested", request_id=self.request_id, reason=self.cancel_reason)

    async def _next(self) -> StreamMessage:
        """The next decodable message; the first within first_timeout_s, each later one within timeout_s."""
        assert self._sub is not None, "start() first"
        first = self._received == 0
        timeout = self.first_timeout_s if first else self.timeout_s
        deadline = time.monotonic() + timeout  # undecodable messages do not extend it
        while True:
            try:
                msg = await self._sub.next_msg(timeout=max(deadline - time.monotonic(), 0.001))
            except nats.errors.TimeoutError as exc:
                log.warning("generation_timeout", request_id=self.request_id, timeout_s=timeout, first=first)
                self.cancel_reason = f"gateway timeout: no message for {timeout:g}s"
                raise generation_timeout(timeout, first=first) from exc
            try:
                message: StreamMessage = decode_event(msg.data, StreamMessage, dict(msg.headers or {}))
            except EnvelopeError as exc:
                log.warning("stream_message_undecodable", request_id=self.request_id, error=str(exc))
                continue
            self._received += 1
            if isinstance(message, GenerationCompleted | GenerationFailed):
                self.finished = True
            return message

    async def wait_first(self) -> StreamMessage:
        """Wait for the first message (a token, or the whole answer), keeping it for messages()."""
        if self._first is None:
            self._first = await self._next()
        return self._first

    async def messages(self) -> AsyncIterator[StreamMessage]:
        """Decoded messages until Completed or Failed; a silence longer than its timeout raises 504."""
        message = await self.wait_first()
        while True:
            yield message
            if isinstance(message, GenerationCompleted | GenerationFailed):
                return
            message = await self._next()


async def complete_chat(
    service: Service,
    tenant: str,
    body: ChatCompletionRequest,
    *,
    traceparent: str | None = None,
    prompt_label: str | None = None,
) -> ChatCompletion:
    """Non-streamed: wait for GenerationCompleted and answer one chat.completion."""
    request = generation_request(tenant, body, new_request_id(), service.settings, prompt_label=prompt_label)
    await admit_generation(service, tenant)
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
    service: Service,
    tenant: str,
    body: ChatCompletionRequest,
    *,
    traceparent: str | None = None,
    prompt_label: str | None = None,
) -> GenerationFollower:
    """Publish the request and wait for its first message, so that a refusal, a failure before any token
    or no token in time is still a plain HTTP error (429, 502, 503, 504); the body follows with
    stream_chat_events. The first token is sent as soon as it is here: no time is added to it."""
    request = generation_request(tenant, body, new_request_id(), service.settings, prompt_label=prompt_label)
    await admit_generation(service, tenant)
    follower = GenerationFollower(service, request, traceparent=traceparent)
    await follower.start()
    try:
        first = await follower.wait_first()
    except BaseException:
        await follower.close()
        raise
    if isinstance(first, GenerationFailed):
        await follower.close()
        raise generation_failed(first)
    return follower


async def stream_chat_events(follower: GenerationFollower, model: str) -> AsyncIterator[bytes]:
    """SSE body: a chunk per TokenDelta, a final chunk with finish_reason, usage and citations, then [DONE].

    A failure after the response started can only be reported in-band: an ``{"error": ...}`` event,
    which OpenAI's clients raise as an APIError. A client that leaves cancels this generator: the
    clean-up (unsubscribe, cancel the generation) is shielded so that the cancellation cannot cut it short.
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
        with anyio.CancelScope(shield=True):
            await follower.close()
