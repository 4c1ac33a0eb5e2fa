"""Reading the replay log back from a real nats-server: ChunksReady up to a sequence, the registry in one pass."""

from __future__ import annotations

import datetime as dt

from gyre_contracts import Chunk, ChunksReady
from gyre_embed.replay import BusReplaySource
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry

WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def chunks_ready(document_id: str, version: int) -> ChunksReady:
    chunk = Chunk(index=0, text=f"{document_id} v{version}", start=0, end=5, token_count=2)
    return ChunksReady(tenant="t", document_id=document_id, version=version, chunks=(chunk,), submitted_at=WHEN)


async def test_replay_reads_the_stored_events_in_order_up_to_the_sequence_noted_and_leaves_no_consumer(
    bus: Bus,
) -> None:
    publisher = Publisher(bus, "ingest")
    for i in range(5):
        await publisher.publish(chunks_ready(f"d{i}", 1))
    source = BusReplaySource(bus, await bus.kv("gyre_documents"))
    position = await source.position()
    await publisher.publish(chunks_ready("after", 1))  # published after the position was noted

    read = [m async for m in source.messages(up_to=position.last)]
    assert [m.sequence for m in read] == list(range(position.first, position.last + 1))
    assert [m.event.document_id for m in read if m.event] == [f"d{i}" for i in range(5)]
    stream = bus.stream_name("GYRE_EMBED")
    assert (await bus.js.stream_info(stream)).state.consumer_count == 0
    assert [m async for m in source.messages(up_to=0)] == []


async def test_replay_stops_at_the_end_of_the_stream_when_the_noted_sequence_is_not_a_chunks_ready(
    bus: Bus,
) -> None:
    publisher = Publisher(bus, "ingest")
    await publisher.publish(chunks_ready("only", 1))
    source = BusReplaySource(bus, await bus.kv("gyre_documents"))
    read = [m async for m in source.messages(up_to=(await source.position()).last + 10)]
    assert [m.event.document_id for m in read if m.event] == ["only"]


async def test_the_registry_is_read_as_each_documents_latest_record(bus: Bus) -> None:
    kv = await bus.kv("gyre_documents")
    registry = DocumentRegistry(kv)
    source = BusReplaySource(bus, kv)
    assert [r async for r in source.records()] == []
    for document_id, version in (("a", 1), ("b", 1), ("a", 2)):
        def put(current: DocumentRecord | None, d: str = document_id, v: int = version) -> DocumentRecord:
            return DocumentRecord(document_id=d, tenant="t", status="indexed", version=v)

        await registry.update("t", document_id, put)
    records = {r.document_id: r.version async for r in source.records()}
    assert records == {"a": 2, "b": 1}
