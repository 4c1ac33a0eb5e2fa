"""A consumer's maximum processing time, against a real nats-server: no handler holds a message or a slot forever.

Before it existed, the heartbeat kept a stuck handler's message "in progress" for good: four stuck
documents took all of an ingest replica's slots, and nothing else was ever read again.
"""

from __future__ import annotations

import asyncio
import dataclasses

import msgspec
import pytest
from nats.js.api import ConsumerInfo

from gyre_contracts import DeadLetter, DocumentSubmitted, decode_event
from gyre_runtime.bus import topology
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from tests.support.services import consumer_info, running_ingest

WAIT_S = 30.0  # upper bound of any single wait; the whole test normally takes a few seconds
MAX_PROCESSING_S = 1.0


async def settled_consumer_info(bus: Bus) -> ConsumerInfo:
    """The ingest consumer's info once it has nothing pending or waiting for an ack (within WAIT_S)."""
    async with asyncio.timeout(WAIT_S):
        info = await consumer_info(bus)
        while info.num_ack_pending or info.num_pending:
            await asyncio.sleep(0.05)
            info = await consumer_info(bus)
    return info


@pytest.fixture
def one_slot_with_a_short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ingest consumer with one slot, a 1 s maximum processing time and a short back-off."""
    monkeypatch.setattr(
        topology,
        "CONSUMERS",
        tuple(
            dataclasses.replace(c, concurrency=1, max_processing_s=MAX_PROCESSING_S, backoff_s=(0.2,), ack_wait_s=2.0)
            if c.durable == "ingest"
            else c
            for c in topology.CONSUMERS
        ),
    )


async def test_a_handler_that_never_returns_is_stopped_retried_then_dead_lettered_and_frees_its_slot(
    bus: Bus, settings: Settings, one_slot_with_a_short_limit: None
) -> None:
    settings = msgspec.structs.replace(settings, max_deliver=2)
    deliveries: list[tuple[str, int]] = []
    cancelled: list[int] = []
    handled_after = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        deliveries.append((event.document_id, ctx.delivery))
        if event.document_id == "after":
            handled_after.set()
            return
        try:
            await asyncio.Event().wait()  # never returns
        except asyncio.CancelledError:
            cancelled.append(ctx.delivery)
            raise

    dead_letters = await bus.js.subscribe(
        bus.subject("dlq.ingest"), stream=bus.stream_name("GYRE_DLQ"), ordered_consumer=True
    )
    publisher = Publisher(bus, "test")
    async with running_ingest(settings, handle):
        await publisher.publish(DocumentSubmitted(document_id="stuck", text="A handler never finishes this."))
        await publisher.publish(DocumentSubmitted(document_id="after", text="Waits for the only slot."))
        letter = decode_event((await dead_letters.next_msg(timeout=WAIT_S)).data, DeadLetter)
        await asyncio.wait_for(handled_after.wait(), WAIT_S)
        info = await settled_consumer_info(bus)
    await dead_letters.unsubscribe()

    # Delivered twice (max_deliver), each time cancelled at the limit; then dead-lettered with the reason.
    assert [d for d in deliveries if d[0] == "stuck"] == [("stuck", 1), ("stuck", 2)]
    assert cancelled == [1, 2]
    assert letter.error.startswith("processing_timeout") and letter.attempts == 2
    # The one slot came free: the next document was handled, and nothing is left pending.
    assert ("after", 1) in deliveries
    assert info.num_ack_pending == 0


async def test_a_handler_within_its_limit_is_acked_as_before(
    bus: Bus, settings: Settings, one_slot_with_a_short_limit: None
) -> None:
    done = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        await asyncio.sleep(MAX_PROCESSING_S / 10)
        done.set()

    async with running_ingest(settings, handle):
        await Publisher(bus, "test").publish(DocumentSubmitted(document_id="quick", text="Done well in time."))
        await asyncio.wait_for(done.wait(), WAIT_S)
        info = await settled_consumer_info(bus)
    assert info.delivered.consumer_seq == 1  # delivered once: acked, not redelivered
