"""The one KV store pattern on a real nats-server: compare-and-set retries and gives up, handles open once."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.js.kv import KeyValue

from gyre_embed.index_targets import ActiveIndex, ActiveIndexMoved, ActiveIndexRecord
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import Settings
from gyre_runtime.state import buckets
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.evaluations import EvaluationStore
from gyre_runtime.state.kv_store import WriteConflict, compare_and_set, create, read
from gyre_runtime.state.tenants import TenantPolicies

KEY = "counter"
decode_int = msgspec.json.Decoder(int).decode


@pytest.fixture
async def other_writer(settings: Settings) -> AsyncIterator[KeyValue]:
    """The same bucket through a second connection: a writer that really races the test's own."""
    other = await connect(settings, name="gyre-test-other-writer")
    yield await other.kv(buckets.DOCUMENTS.name)
    await other.close()


async def test_a_compare_and_set_that_lost_a_race_reads_again_and_applies_its_change_to_the_winners_value(
    bus: Bus, other_writer: KeyValue
) -> None:
    kv = await bus.kv(buckets.DOCUMENTS.name)
    await kv.put(KEY, b"1")
    seen: list[int | None] = []

    async def add_one_while_another_writer_adds_ten(current: int | None) -> int:
        seen.append(current)
        if len(seen) == 1:  # between this read and its write, someone else writes
            await other_writer.put(KEY, msgspec.json.encode((current or 0) + 10))
        return (current or 0) + 1

    result = await compare_and_set(kv, KEY, add_one_while_another_writer_adds_ten, decode=decode_int)

    assert seen == [1, 11]  # the first write was refused; the retry started from the other writer's value
    assert result == 12
    assert (await read(kv, KEY, decode_int)).value == 12


async def test_a_compare_and_set_that_always_loses_gives_up_after_its_attempts_naming_what_kept_changing(
    bus: Bus, other_writer: KeyValue
) -> None:
    kv = await bus.kv(buckets.DOCUMENTS.name)
    attempts = 0

    async def always_overtaken(current: int | None) -> int:
        nonlocal attempts
        attempts += 1
        await other_writer.put(KEY, msgspec.json.encode(attempts * 100))
        return (current or 0) + 1

    with pytest.raises(WriteConflict) as raised:
        await compare_and_set(kv, KEY, always_overtaken, decode=decode_int, what="the test counter", attempts=3)

    assert attempts == 3
    assert str(raised.value) == (
        "the test counter kept changing under us: all 3 compare-and-set attempts lost to other writers"
    )
    assert (await read(kv, KEY, decode_int)).value == 300  # none of this writer's values got in


async def test_a_change_returning_none_writes_nothing_and_an_encode_returning_none_deletes_the_key(bus: Bus) -> None:
    kv = await bus.kv(buckets.DOCUMENTS.name)
    assert await compare_and_set(kv, KEY, lambda current: None, decode=decode_int) is None
    assert (await read(kv, KEY, decode_int)).revision == 0  # never written

    await compare_and_set(kv, KEY, lambda current: 5, decode=decode_int)
    await compare_and_set(
        kv, KEY, lambda current: 0, decode=decode_int,
        encode=lambda value: msgspec.json.encode(value) if value else None,
    )
    assert (await read(kv, KEY, decode_int)).value is None
    # A deleted key can be created again.
    assert await create(kv, KEY, b"7")
    assert not await create(kv, KEY, b"8")
    assert (await read(kv, KEY, decode_int)).value == 7


async def test_a_store_opens_its_bucket_once_per_connection(bus: Bus, settings: Settings) -> None:
    # Opening a bucket asks JetStream for its stream's info: a second connection counts those requests.
    observer = await connect(settings, name="gyre-test-observer")
    try:
        info_requests = await observer.nc.subscribe(f"$JS.API.STREAM.INFO.KV_{bus.bucket_name('gyre_documents')}")
        await observer.nc.flush()

        registries = [await DocumentRegistry.open(bus) for _ in range(5)]
        await registries[0].get("tenant-a", "doc-1")
        await observer.nc.flush()  # every request routed to the observer before this arrives

        assert info_requests.pending_msgs == 1
        assert all(registry.kv is registries[0].kv for registry in registries)
    finally:
        await observer.close()


async def test_stores_on_one_connection_share_its_handles_and_tell_a_bucket_from_an_object_store(bus: Bus) -> None:
    documents = await DocumentRegistry.open(bus)
    assert documents.kv is await bus.kv("gyre_documents")
    policies = await TenantPolicies.open(bus)
    assert policies.default.pii == bus.settings.pii_policy  # tenants without a policy get the settings'
    # Runs (KV) and results (Object Store) share the name gyre_evaluations, not the handle.
    evaluations = await EvaluationStore.open(bus)
    await evaluations.put_object("run-1/report.md", b"# report")
    assert await evaluations.get_object("run-1/report.md") == b"# report"
    assert (await read(evaluations.kv, "run.run-1", decode_int)).value is None


async def test_a_collection_switch_is_not_recorded_over_another_replicas_switch(bus: Bus) -> None:
    record = await ActiveIndexRecord.open(bus)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    first = ActiveIndex(collection="chunks-b", embedding_model="m", previous_collection="chunks-a", switched_at=at)
    await record.put(first)  # no record yet: the first switch is recorded

    # A replica still serving chunks-a switches too: the record says chunks-b now, so it is refused.
    late = ActiveIndex(collection="chunks-c", embedding_model="m", previous_collection="chunks-a", switched_at=at)
    with pytest.raises(ActiveIndexMoved, match="'chunks-b'"):
        await record.put(late)
    assert await record.get() == first

    follow_up = ActiveIndex(collection="chunks-c", embedding_model="m", previous_collection="chunks-b", switched_at=at)
    await record.put(follow_up)
    assert await record.get() == follow_up
