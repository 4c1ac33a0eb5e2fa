"""Consuming events from a durable pull consumer (a FastStream subscriber), with Gyre's handler policy.

Policy: undecodable payload -> dead letter at once (with the decode error); handler raises
PermanentError -> dead letter at once; any other exception -> nak with back-off; failing on
the last allowed delivery -> dead letter; success -> ack.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Union

import nats.errors
from nats.aio.msg import Msg
from nats.errors import NotJSMessageError
from nats.js.errors import ServiceUnavailableError

from gyre_contracts import DeadLetter, EnvelopeError, Event, decode_event
from gyre_contracts.limits import is_tenant_id
from gyre_contracts.monitor import fit_dead_letter
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.dead_letters import redact_dead_letter
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.bus.topology import ConsumerSpec
from gyre_runtime.bus.wire import Undecodable
from gyre_runtime.logging import get_logger
from gyre_runtime.metrics import HANDLER_SECONDS, MESSAGES_HANDLED

log = get_logger()

# How long a fetch that failed with a bus error waits before the subscriber asks again.
FETCH_RETRY_S = 0.5

# Room for the CloudEvents headers of a dead letter, which count towards the bus's max payload.
DEAD_LETTER_HEADERS_ALLOWANCE = 2048


class PermanentError(Exception):
    """A failure that retrying cannot fix: the message goes straight to the dead-letter stream."""


@dataclass(frozen=True)
class MessageContext:
    """What a handler may know about the message besides its event."""

    subject: str
    event_id: str
    tenant: str
    traceparent: str | None
    delivery: int
    headers: dict[str, str]
    # Where the stream keeps the message: lets a handler delete it (a deleted document's content).
    stream_sequence: int = 0


Handler = Callable[[Any, MessageContext], Awaitable[None]]


def delivery_of(msg: Msg) -> tuple[int, str, int]:
    """(delivery count, stream, stream sequence) of a JetStream message. FastStream's in-memory test
    broker (unit tests of handlers) delivers plain messages: those count as a first delivery."""
    try:
        metadata = msg.metadata
    except NotJSMessageError:
        return 1, "", 0
    return metadata.num_delivered, metadata.stream, metadata.sequence.stream


class ConsumerWorker:
    """Gyre's handler policy for one durable consumer, fed by a FastStream pull subscriber.

    FastStream owns the subscription (bound to the durable consumer the topology declares) and fetches
    one message at a time; :meth:`receive` starts the handler in a task of its own and returns only
    once a slot is free for the next message, so at most ``spec.concurrency`` messages are fetched at
    once and none waits un-heartbeated behind busy slots (its ack wait would run out meanwhile).
    """

    def __init__(
        self, bus: Bus, spec: ConsumerSpec, handler: Handler, publisher: Publisher, *, max_deliver: int
    ) -> None:
        self.bus = bus
        self.spec = spec
        self.handler = handler
        self.publisher = publisher
        self.max_deliver = max_deliver
        self.event_type: Any = spec.events[0] if len(spec.events) == 1 else Union[spec.events]  # noqa: UP007
        self._inflight: set[asyncio.Task[None]] = set()
        self._slot_freed = asyncio.Event()
        self.subscriber: Any = None  # the FastStream subscriber, once attached

    def keep_fetching_through_bus_errors(self) -> None:
        """Once the subscriber has started: a fetch that fails with a bus error (a JetStream API error
        while a cluster elects a leader, the consumer briefly gone) waits ``FETCH_RETRY_S`` and fetches
        nothing, so the loop goes on at a calm pace. FastStream's loop passes over timeouts, a closed
        connection and JetStream unavailable itself; on anything else it restarts at once, which on an
        error that lasts is a busy loop."""
        subscription = self.subscriber.subscription
        fetch = subscription.fetch
        passed_over = (nats.errors.TimeoutError, nats.errors.ConnectionClosedError, ServiceUnavailableError)

        async def patient_fetch(*args: Any, **kwargs: Any) -> list[Msg]:
            try:
                messages: list[Msg] = await fetch(*args, **kwargs)
            except passed_over:
                raise
            except nats.errors.Error as exc:
                log.warning("fetch_failed", consumer=self.spec.durable, error=f"{type(exc).__name__}: {exc}",
                            retry_in_s=FETCH_RETRY_S)
                await asyncio.sleep(FETCH_RETRY_S)
                return []
            return messages

        subscription.fetch = patient_fetch

    def decode(self, msg: Msg) -> Event | Undecodable:
        """The subscriber's decoder: Gyre's envelope (body and CloudEvents headers), never raising."""
        try:
            event: Event = decode_event(msg.data, self.event_type, dict(msg.headers or {}))
        except EnvelopeError as exc:
            return Undecodable(str(exc))
        return event

    async def receive(self, event: Event | Undecodable, msg: Msg) -> None:
        """Start handling ``msg``; return when the next message may be fetched."""
        task = asyncio.create_task(self._handle(event, msg))
        self._inflight.add(task)
        task.add_done_callback(self._done)
        while len(self._inflight) >= self.spec.concurrency:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Let in-flight handlers finish (unfinished ones are redelivered later); the caller has
        stopped the subscriber, so nothing new is fetched."""
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=grace_s)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_freed.set()

    async def _handle(self, event: Event | Undecodable, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        delivery, _, stream_sequence = delivery_of(msg)
        if isinstance(event, Undecodable):
            await self._dead_letter(msg, headers, event.error, delivery)
            return
        type_name = event.event_type()
        ctx = MessageContext(
            subject=msg.subject,
            event_id=headers.get("ce-id", ""),
            tenant=event.tenant,
            traceparent=headers.get("ce-traceparent"),
            delivery=delivery,
            headers=headers,
            stream_sequence=stream_sequence,
        )
        started = time.perf_counter()
        keep_alive = asyncio.create_task(self._keep_alive(msg))
        # Past the consumer's maximum processing time the handler is cancelled and its slot freed: a
        # handler stuck for good would otherwise hold its slot, and its heartbeat the message, forever.
        deadline = asyncio.timeout(self.spec.max_processing_s)
        try:
            async with deadline:
                await self.handler(event, ctx)
        except asyncio.CancelledError:
            raise
        except PermanentError as exc:
            await self._dead_letter(msg, headers, f"{type(exc).__name__}: {exc}", delivery)
            return
        except Exception as exc:  # any failure of a handler is retried, never crashes the service
            error = f"{type(exc).__name__}: {exc}"
            if deadline.expired():
                limit = self.spec.max_processing_s
                error = f"processing_timeout: the handler ran longer than the consumer's limit of {limit:g} s"
            if delivery >= self.max_deliver:
                await self._dead_letter(msg, headers, error, delivery)
                return
            delay = self.spec.backoff_s[min(delivery, len(self.spec.backoff_s)) - 1]
            log.warning(
                "handler_failed", consumer=self.spec.durable, event_type=type_name,
                event_id=ctx.event_id, delivery=delivery, retry_in_s=delay, error=error,
            )
            MESSAGES_HANDLED.labels(self.spec.service, type_name, "nak").inc()
            await msg.nak(delay=delay)
            return
        finally:
            keep_alive.cancel()
            HANDLER_SECONDS.labels(self.spec.service, type_name).observe(time.perf_counter() - started)
        await msg.ack()
        MESSAGES_HANDLED.labels(self.spec.service, type_name, "ack").inc()

    async def _keep_alive(self, msg: Msg) -> None:
        """While the handler runs, restart the message's ack wait (+WPI) every third of it.

        So ack_wait stays short however long a handler takes: what a killed replica held comes
        back within ack_wait (and inside the streams' duplicate window, so the events its redelivery
        republishes are dropped as duplicates), not after the slowest handler's worst case.
        """
        # Never past the maximum processing time: a handler that outlives it (one that swallowed its
        # cancellation) loses its message to redelivery after ack_wait, not keeps it forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.spec.max_processing_s):
                while True:
                    await asyncio.sleep(self.spec.ack_wait_s / 3)
                    with contextlib.suppress(Exception):
                        await msg.in_progress()

    async def _dead_letter(self, msg: Msg, headers: dict[str, str], error: str, attempts: int) -> None:
        # The header is the sender's word: a tenant that is no valid id would make the letter itself undecodable.
        tenant = headers.get("ce-tenant", "default")
        letter = DeadLetter(
            tenant=tenant if is_tenant_id(tenant) else "default",
            service=self.spec.service,
            original_subject=msg.subject,
            headers=headers,
            payload=base64.b64encode(msg.data).decode(),
            error=error,
            attempts=attempts,
            payload_bytes=len(msg.data),
        )
        # Personal data in a failed message would otherwise stay on the bus as long as the DLQ keeps it.
        letter = redact_dead_letter(letter, self.bus.settings.dead_letter_redaction)
        # A message near the bus's max payload grows by a third in base64: shrink the letter rather than lose it.
        letter = fit_dead_letter(letter, self.bus.nc.max_payload - DEAD_LETTER_HEADERS_ALLOWANCE)
        if letter.payload_truncated:
            log.warning("dead_letter_truncated", consumer=self.spec.durable, payload_bytes=letter.payload_bytes)
        _, stream, seq = delivery_of(msg)
        await self.publisher.publish(
            letter,
            subject=f"dlq.{self.spec.service}",
            event_id=f"dlq-{self.spec.durable}-{stream}-{seq}",
        )
        await msg.term()
        MESSAGES_HANDLED.labels(self.spec.service, headers.get("ce-type", "unknown"), "dead_letter").inc()
        log.error("dead_lettered", consumer=self.spec.durable, subject=msg.subject, error=error, attempts=attempts)
