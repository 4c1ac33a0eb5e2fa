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
from typing import TypeAlias

import anyio
import msgspec
import nats.errors
from nats.aio.subscription import Subscription

from gyre_contracts import (
    EnvelopeError,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    TokenDelta,
    decode_event,
)
from gyre_gateway.chat.backpressure import admit_generation
from gyre_gateway.chat.failures import generation_failed, generation_timeout
from gyre_gateway.chat.protocol import ChatCompletion, ChatCompletionRequest
from gyre_gateway.chat.request import generation_request, new_request_id
from gyre_gateway.chat.responses import completion_chunk, completion_response, delta_of, final_chunk, sse_event
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish, publish_core
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service

log = get_logger()

StreamMessage: TypeAlias = TokenDelta | GenerationCompleted | GenerationFailed


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


async def start_chat(
    service: Service,
    tenant: str,
    body: ChatCompletionRequest,
    *,
    traceparent: str | None = None,
    prompt_label: str | None = None,
) -> GenerationFollower:
    """Publish the request and wait for its first message, so that a refusal, a failure before any token
    or no token in time is still a plain HTTP error (429, 502, 503, 504); the answer follows with
    complete_chat or stream_chat_events. The first token is sent as soon as it is here: no time is added to it."""
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


async def complete_chat(follower: GenerationFollower) -> ChatCompletion:
    """Non-streamed: wait for GenerationCompleted and answer one chat.completion."""
    created = int(time.time())
    try:
        async for message in follower.messages():
            if isinstance(message, GenerationCompleted):
                return completion_response(message, created)
            if isinstance(message, GenerationFailed):
                raise generation_failed(message)
    finally:
        await follower.close()
    raise AssertionError("unreachable: messages() ends with Completed or Failed")


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
