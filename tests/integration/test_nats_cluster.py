"""Gyre's bus on a real 3-node NATS cluster: streams R3 keep every acknowledged event through the loss of a leader."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator

import nats.errors
import pytest

from gyre_contracts import DocumentSubmitted, decode_event, utc_now
from gyre_runtime.bus.connection import Bus, connect, ensure_stream
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.bus.topology import STREAMS
from gyre_runtime.config import load_settings
from tests.support.nats_cluster import NatsCluster

EVENTS = 200


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster() as running:
        yield running


def submission(index: int) -> DocumentSubmitted:
    return DocumentSubmitted(
        tenant="default", document_id=f"doc-{index}", text=f"document number {index}", content_type="text/plain",
        source="api", submission_id=f"submission-{index}", submitted_at=utc_now(),
    )


async def publish_until_stored(publisher: Publisher, index: int) -> None:
    """Publish with the event's own id until the stream acknowledges it.

    A try whose acknowledgement was lost may still have been stored: the retry carries the same
    ``Nats-Msg-Id``, so the stream drops the copy instead of storing it twice.
    """
    for _ in range(60):
        try:
            await publisher.publish(submission(index), event_id=f"submission-{index}")
            return
        except (nats.errors.Error, TimeoutError):
            await asyncio.sleep(0.5)
    raise AssertionError(f"event {index} was never acknowledged")


async def declare_ingest_stream(bus: Bus) -> None:
    """The one stream these tests use, R3. A fresh cluster on a loaded machine can outlast JetStream's
    API timeout while it places the stream's replicas: tried again, as an operator's step would be."""
    spec = next(s for s in STREAMS if s.name == "GYRE_INGEST")
    for attempt in range(1, 13):
        try:
            await ensure_stream(bus, spec)
            return
        except (nats.errors.Error, TimeoutError):
            if attempt == 12:
                raise
            await asyncio.sleep(1.0)


async def stored_document_ids(bus: Bus) -> list[str]:
    """The document id of every message GYRE_INGEST holds (an ordered consumer reads exactly that many)."""
    total = (await bus.js.stream_info("GYRE_INGEST")).state.messages
    sub = await bus.js.subscribe("gyre.ingest.>", ordered_consumer=True)
    try:
        ids = []
        for _ in range(total):
            msg = await sub.next_msg(timeout=30)
            ids.append(decode_event(msg.data, DocumentSubmitted, dict(msg.headers or {})).document_id)
        return ids
    finally:
        await sub.unsubscribe()


@pytest.mark.timeout(180)
async def test_killing_the_stream_leader_loses_and_doubles_no_acknowledged_event(cluster: NatsCluster) -> None:
    settings = load_settings({}, nats_url=",".join(cluster.urls), stream_replicas=3)
    bus: Bus = await connect(settings, name="gyre-cluster-test")
    try:
        await declare_ingest_stream(bus)
        publisher = Publisher(bus, "test")
        assert (await bus.js.stream_info("GYRE_INGEST")).config.num_replicas == 3
        leader = cluster.wait_stream_leaders(["GYRE_INGEST"])["GYRE_INGEST"]

        for i in range(EVENTS // 2):
            await publish_until_stored(publisher, i)
        assert await asyncio.to_thread(cluster.kill, leader, signal.SIGKILL) == -signal.SIGKILL
        for i in range(EVENTS // 2, EVENTS):
            await publish_until_stored(publisher, i)
        new_leader = cluster.wait_stream_leaders(["GYRE_INGEST"])["GYRE_INGEST"]
        assert new_leader != leader

        await asyncio.to_thread(cluster.start_node, leader)
        await asyncio.to_thread(cluster.wait_current, leader, 60.0)

        ids = await stored_document_ids(bus)
        assert sorted(ids) == sorted(f"doc-{i}" for i in range(EVENTS))
    finally:
        await bus.close()


@pytest.mark.timeout(120)
async def test_a_restarted_node_catches_up_on_what_it_missed(cluster: NatsCluster) -> None:
    settings = load_settings({}, nats_url=",".join(cluster.urls), stream_replicas=3)
    bus = await connect(settings, name="gyre-cluster-test")
    try:
        await declare_ingest_stream(bus)
        publisher = Publisher(bus, "test")
        leader = cluster.wait_stream_leaders(["GYRE_INGEST"])["GYRE_INGEST"]
        follower = next(n.name for n in cluster.nodes if n.name != leader)
        await asyncio.to_thread(cluster.kill, follower, signal.SIGKILL)
        for i in range(50):
            await publish_until_stored(publisher, i)
        assert cluster.node(follower).running is False

        await asyncio.to_thread(cluster.start_node, follower)
        await asyncio.to_thread(cluster.wait_current, follower, 60.0)

        # The node's own copy of the stream, as it reports it itself.
        assert cluster.local_stream_messages(follower, "GYRE_INGEST") == 50
    finally:
        await bus.close()
