"""The consumer's handler policy on FastStream's in-memory broker (no redelivery: that needs a real
nats-server, see tests/integration/test_bus.py): what a handler receives, and what is dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import nats.errors
import pytest
from faststream.nats import NatsBroker, TestNatsBroker
from nats.js.errors import APIError

from gyre_contracts import DeadLetter, DocumentSubmitted, Event, cloudevent_headers, encode_body
from gyre_runtime.bus.broker import Attached, declare
from gyre_runtime.bus.consumer import FETCH_RETRY_S, ConsumerWorker, MessageContext, PermanentError
from gyre_runtime.bus.permissions import Naming
from gyre_runtime.bus.topology import consumers_of
from gyre_runtime.config import Settings, load_settings

SUBJECT = "gyre.ingest.submitted.tenant-a"


@dataclasses.dataclass
class FakeConnection:
    max_payload: int = 1024 * 1024


@dataclasses.dataclass
class FakeBus:
    settings: Settings = dataclasses.field(default_factory=lambda: load_settings({}))
    nc: FakeConnection = dataclasses.field(default_factory=FakeConnection)


@dataclasses.dataclass
class RecordingPublisher:
    """Stands in for the Publisher: the dead letters the worker sends, with their subjects."""

    sent: list[tuple[Event, str | None]] = dataclasses.field(default_factory=list)

    async def publish(self, event: Event, *, subject: str | None = None, event_id: str | None = None) -> None:
        self.sent.append((event, subject))


class Recorder:
    def __init__(self, fail_with: Exception | None = None) -> None:
        self.seen: list[tuple[DocumentSubmitted, MessageContext]] = []
        self.fail_with = fail_with
        self.done = asyncio.Event()

    async def __call__(self, event: DocumentSubmitted, ctx: MessageContext) -> None:
        self.seen.append((event, ctx))
        self.done.set()
        if self.fail_with is not None:
            raise self.fail_with


async def deliver(handler: Recorder, body: bytes, headers: dict[str, str]) -> RecordingPublisher:
    """Declare ingest's consumer on an in-memory broker with ``handler``, send one message, wait for it."""
    publisher = RecordingPublisher()
    spec = next(s for s in consumers_of("ingest") if s.durable == "ingest")
    worker = ConsumerWorker(FakeBus(), spec, handler, publisher, max_deliver=5)  # type: ignore[arg-type]
    broker = NatsBroker()
    declare(broker, "ingest", Naming(), Attached(consumers={"ingest": worker}))
    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(body, SUBJECT, headers=headers, stream="GYRE_INGEST")
        await worker.stop(grace_s=5.0)
    return publisher


def submission() -> tuple[DocumentSubmitted, bytes, dict[str, Any]]:
    event = DocumentSubmitted(tenant="tenant-a", document_id="doc-1", text="The tower is teal.")
    return event, encode_body(event), cloudevent_headers(event, source="gyre/test", event_id="evt-1")


async def test_the_handler_gets_the_decoded_event_and_its_context() -> None:
    handler = Recorder()
    event, body, headers = submission()
    publisher = await deliver(handler, body, headers)
    [(received, ctx)] = handler.seen
    assert received == event
    assert (ctx.subject, ctx.event_id, ctx.tenant, ctx.delivery) == (SUBJECT, "evt-1", "tenant-a", 1)
    assert publisher.sent == []


async def test_an_undecodable_payload_is_dead_lettered_with_its_reason_and_never_handled() -> None:
    handler = Recorder()
    _, _, headers = submission()
    publisher = await deliver(handler, b'{"type": "gyre.ingest.submitted.v1", "document_id": 7}', headers)
    assert handler.seen == []
    [(letter, subject)] = publisher.sent
    assert isinstance(letter, DeadLetter) and subject == "dlq.ingest"
    assert "document_id" in letter.error and letter.service == "ingest" and letter.tenant == "tenant-a"
    assert base64.b64decode(letter.payload).startswith(b'{"type"')


@pytest.mark.parametrize("error", [PermanentError("the document names no tenant we know")])
async def test_a_permanent_error_is_dead_lettered_at_once(error: Exception) -> None:
    handler = Recorder(fail_with=error)
    _, body, headers = submission()
    publisher = await deliver(handler, body, headers)
    assert len(handler.seen) == 1
    [(letter, _)] = publisher.sent
    assert isinstance(letter, DeadLetter)
    assert letter.error == "PermanentError: the document names no tenant we know" and letter.attempts == 1


class FailingSubscription:
    """A pull subscription whose fetches fail with the given errors, one per call, then return nothing."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def fetch(self, batch: int = 1, **options: Any) -> list[Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return []


async def test_a_fetch_that_fails_with_a_bus_error_waits_and_fetches_nothing_instead_of_restarting_hot() -> None:
    spec = next(s for s in consumers_of("ingest") if s.durable == "ingest")
    worker = ConsumerWorker(FakeBus(), spec, Recorder(), RecordingPublisher(), max_deliver=5)  # type: ignore[arg-type]
    subscription = FailingSubscription(APIError(description="no leader"), nats.errors.TimeoutError())
    worker.subscriber = dataclasses.make_dataclass("Subscriber", [("subscription", Any)])(subscription)
    worker.keep_fetching_through_bus_errors()
    started = asyncio.get_running_loop().time()
    assert await subscription.fetch(1, timeout=1.0) == []  # the API error: logged, waited, nothing fetched
    assert asyncio.get_running_loop().time() - started >= FETCH_RETRY_S * 0.9
    with pytest.raises(nats.errors.TimeoutError):  # FastStream's own loop passes over these
        await subscription.fetch(1, timeout=1.0)
    assert subscription.calls == 2
