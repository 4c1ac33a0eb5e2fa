"""The bus against a real nats-server: shared durable consumers, redelivery, dead letters, de-duplication."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import itertools
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import msgspec
import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerInfo
from nats.js.errors import ServiceUnavailableError

from gyre_contracts import DocumentSubmitted, decode_event
from gyre_runtime.bus import topology
from gyre_runtime.bus.connection import Bus, connect, ensure_topology
from gyre_runtime.bus.consumer import Handler, MessageContext, PermanentError
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from tests.support.nats_server import NatsServer
from tests.support.publishing import publish_many
from tests.support.services import consumer_info, read_dead_letters, running_ingest

REPLICA_SCRIPT = Path(__file__).with_name("replica.py")
INGEST_STREAM = "GYRE_INGEST"
DLQ_STREAM = "GYRE_DLQ"
WAIT_S = 20.0  # upper bound of any single wait; tests normally finish each wait in well under a second


# ---------------------------------------------------------------- helpers


def submitted(document_id: str) -> DocumentSubmitted:
    return DocumentSubmitted(document_id=document_id, text=f"text of {document_id}")


def use_ingest_consumer(monkeypatch: pytest.MonkeyPatch, **changes: Any) -> None:
    """Swap the ingest consumer's spec in the topology table (e.g. short back-off) for this test."""
    monkeypatch.setattr(
        topology,
        "CONSUMERS",
        tuple(dataclasses.replace(c, **changes) if c.durable == "ingest" else c for c in topology.CONSUMERS),
    )


async def wait_consumer_drained(bus: Bus, acked_through: int) -> ConsumerInfo:
    """Poll (bounded) until every message up to stream seq ``acked_through`` is acked or terminated."""
    info = await consumer_info(bus)
    async with asyncio.timeout(WAIT_S):
        while not (
            info.ack_floor is not None
            and info.ack_floor.stream_seq >= acked_through
            and info.num_ack_pending == 0
            and info.num_pending == 0
        ):
            await asyncio.sleep(0.02)
            info = await consumer_info(bus)
    return info


async def stream_messages(bus: Bus, spec_name: str) -> int:
    info = await bus.js.stream_info(bus.stream_name(spec_name))
    return int(info.state.messages)


@dataclasses.dataclass(frozen=True)
class Report:
    replica: str
    document_id: str
    delivery: int


class Reports:
    """What the replica processes say on ``test.started`` / ``test.handled``; waits are event-driven."""

    def __init__(self) -> None:
        self.started: list[Report] = []
        self.handled: list[Report] = []
        self._changed = asyncio.Condition()

    async def subscribe(self, bus: Bus) -> None:
        await bus.nc.subscribe("test.started", cb=self._on_started)
        await bus.nc.subscribe("test.handled", cb=self._on_handled)
        await bus.nc.flush()

    async def _on_started(self, msg: Msg) -> None:
        await self._record(self.started, msg)

    async def _on_handled(self, msg: Msg) -> None:
        await self._record(self.handled, msg)

    async def _record(self, into: list[Report], msg: Msg) -> None:
        into.append(Report(**json.loads(msg.data)))
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(condition)
        except TimeoutError:
            raise AssertionError(
                f"timed out after {timeout_s}s waiting for {what}; "
                f"started={len(self.started)} handled={len(self.handled)}"
            ) from None

    def handled_ids(self) -> set[str]:
        return {r.document_id for r in self.handled}


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


class Replica:
    """One ``replica.py`` process: a separate ingest Service sharing the durable consumer."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.name = name
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(
        cls, settings: Settings, name: str, log_dir: Path, *, work_ms: int, ack_wait_s: float | None = None
    ) -> Replica:
        args = [str(REPLICA_SCRIPT), "--nats", settings.nats_url, "--name", name, "--work-ms", str(work_ms)]
        args += ["--data-dir", str(log_dir / f"data-{name}")]
        if ack_wait_s is not None:
            args += ["--ack-wait", str(ack_wait_s)]
        log_path = log_dir / f"replica-{name}.log"
        with _open_log(log_path) as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=asyncio.subprocess.PIPE, stderr=log
            )
        replica = cls(name, proc, log_path)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), WAIT_S)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await replica.kill()
            raise AssertionError(f"replica {name} did not start; its log:\n{log_path.read_text(errors='replace')}")
        return replica

    async def kill(self) -> None:
        """SIGKILL: no clean stop, no acks, no unsubscribe."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(self.proc.wait(), WAIT_S)

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            await self.kill()


@pytest.fixture
async def replicas(settings: Settings, tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Replica]]]:
    started: list[Replica] = []

    async def start(name: str, *, work_ms: int, ack_wait_s: float | None = None) -> Replica:
        replica = await Replica.start(settings, name, tmp_path, work_ms=work_ms, ack_wait_s=ack_wait_s)
        started.append(replica)
        return replica

    yield start
    await asyncio.gather(*(r.stop() for r in started))


# ---------------------------------------------------------------- scale-out and redelivery


async def test_two_replicas_share_one_consumer_and_each_message_is_handled_once(
    bus: Bus, replicas: Callable[..., Awaitable[Replica]]
) -> None:
    reports = Reports()
    await reports.subscribe(bus)
    await asyncio.gather(replicas("r1", work_ms=200), replicas("r2", work_ms=200))
    ids = [f"doc-{i:02d}" for i in range(40)]

    acks = await publish_many(bus, [(submitted(i), None) for i in ids])
    assert len({a.seq for a in acks}) == 40

    await reports.wait_until(lambda: reports.handled_ids() >= set(ids), "all 40 documents handled")
    info = await wait_consumer_drained(bus, acks[-1].seq)
    await bus.nc.flush()  # any report sent before the last ack has reached us now

    per_id = Counter(r.document_id for r in reports.handled)
    assert per_id == Counter(ids), f"handled more than once: {[i for i, n in per_id.items() if n > 1]}"
    assert all(r.delivery == 1 for r in reports.handled)
    assert info.num_redelivered == 0
    per_replica = Counter(r.replica for r in reports.handled)
    assert set(per_replica) == {"r1", "r2"}, f"one replica did all the work: {per_replica}"


async def test_a_replica_killed_mid_work_has_its_messages_redelivered_to_the_other(
    bus: Bus, replicas: Callable[..., Awaitable[Replica]]
) -> None:
    reports = Reports()
    await reports.subscribe(bus)
    # A never finishes within the test; B is quick. Both declare the same (short) ack wait, so the
    # consumer's config agrees and A's unacked messages come back after ~1 s instead of 60 s.
    a, _ = await asyncio.gather(
        replicas("A", work_ms=60_000, ack_wait_s=1.0), replicas("B", work_ms=20, ack_wait_s=1.0)
    )
    info = await consumer_info(bus)
    assert info.config.ack_wait == pytest.approx(1.0)
    ids = [f"doc-{i:02d}" for i in range(20)]

    await publish_many(bus, [(submitted(i), None) for i in ids])
    await reports.wait_until(lambda: any(r.replica == "A" for r in reports.started), "replica A to start a message")
    await a.kill()
    a_started = {r.document_id for r in reports.started if r.replica == "A"}

    def a_work_redone_by_b() -> bool:
        redone = {r.document_id for r in reports.handled if r.replica == "B" and r.delivery >= 2}
        return reports.handled_ids() >= set(ids) and redone >= a_started

    await reports.wait_until(a_work_redone_by_b, "every document handled and A's taken over by B")
    assert not any(r.replica == "A" for r in reports.handled)
    # Whatever A started (including reports that arrived after the kill) B did again.
    a_started = {r.document_id for r in reports.started if r.replica == "A"}
    assert a_started
    for document_id in a_started:
        deliveries = [r.delivery for r in reports.handled if r.document_id == document_id]
        assert deliveries and min(deliveries) >= 2, (document_id, deliveries)


# ---------------------------------------------------------------- handler policy


async def test_a_malformed_payload_lands_in_the_dead_letter_stream_with_its_reason(
    bus: Bus, settings: Settings
) -> None:
    seen: list[str] = []
    valid_handled = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        seen.append(event.document_id)
        valid_handled.set()

    garbage = b"\x00\xffnot json at all"
    wrong_type = json.dumps({"type": "gyre.embed.requested.v1", "document_id": "d-1", "tenant": "t1"}).encode()
    subject = bus.subject("ingest.submitted.t1")  # the tenant's subject: ingest reads ingest.submitted.<tenant>
    async with running_ingest(settings, handle):
        await bus.js.publish(subject, garbage)
        await bus.js.publish(subject, wrong_type, headers={"ce-tenant": "t1", "ce-id": "wrong-type-1"})
        last = await Publisher(bus, "test").publish(submitted("good-1"))
        letters = await read_dead_letters(bus, 2)
        await asyncio.wait_for(valid_handled.wait(), WAIT_S)
        info = await wait_consumer_drained(bus, last.seq)

    by_payload = {base64.b64decode(letter.payload): letter for letter in letters}
    assert set(by_payload) == {garbage, wrong_type}

    bad = by_payload[garbage]
    assert bad.service == "ingest"
    assert bad.original_subject == subject
    assert bad.error.startswith("undecodable payload")
    assert bad.attempts == 1
    assert bad.tenant == "default"

    wrong = by_payload[wrong_type]
    assert wrong.error.startswith("undecodable payload")
    assert "type" in wrong.error
    assert wrong.tenant == "t1"
    assert wrong.headers["ce-id"] == "wrong-type-1"

    # Dead-lettered messages are terminated (never redelivered) and never reach the handler.
    assert seen == ["good-1"]
    assert info.num_redelivered == 0


async def test_a_handler_that_keeps_failing_is_dead_lettered_after_max_deliver(
    bus: Bus, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_ingest_consumer(monkeypatch, backoff_s=(0.05, 0.05, 0.05))
    settings = msgspec.structs.replace(settings, max_deliver=3)
    deliveries: list[int] = []

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        deliveries.append(ctx.delivery)
        raise RuntimeError("vector store unavailable")

    async with running_ingest(settings, handle):
        ack = await Publisher(bus, "test").publish(submitted("doomed"), event_id="doomed-1")
        [letter] = await read_dead_letters(bus, 1)
        info = await wait_consumer_drained(bus, ack.seq)

    assert letter.attempts == 3
    assert letter.error == "RuntimeError: vector store unavailable"
    assert letter.headers["ce-id"] == "doomed-1"
    assert decode_event(base64.b64decode(letter.payload), DocumentSubmitted).document_id == "doomed"
    assert deliveries == [1, 2, 3]  # terminated after the third: no fourth delivery
    assert info.config.max_deliver == 4
    assert await stream_messages(bus, DLQ_STREAM) == 1


async def test_a_permanent_error_is_dead_lettered_at_once(bus: Bus, settings: Settings) -> None:
    deliveries: list[int] = []

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        deliveries.append(ctx.delivery)
        raise PermanentError("document format not supported")

    async with running_ingest(settings, handle):
        ack = await Publisher(bus, "test").publish(submitted("odd"))
        [letter] = await read_dead_letters(bus, 1)
        await wait_consumer_drained(bus, ack.seq)

    assert deliveries == [1]
    assert letter.attempts == 1
    assert letter.error == "PermanentError: document format not supported"


async def test_a_transient_failure_is_retried_then_acked(
    bus: Bus, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    backoff = (0.2, 0.4, 0.8)
    use_ingest_consumer(monkeypatch, backoff_s=backoff)
    attempts: list[tuple[int, float]] = []
    succeeded = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        attempts.append((ctx.delivery, time.monotonic()))
        if ctx.delivery < 3:
            raise ConnectionError("embedder busy")
        succeeded.set()

    async with running_ingest(settings, handle):
        ack = await Publisher(bus, "test").publish(submitted("flaky"))
        await asyncio.wait_for(succeeded.wait(), WAIT_S)
        info = await wait_consumer_drained(bus, ack.seq)

    assert [d for d, _ in attempts] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    # Each nak asks for the spec's back-off before the next delivery.
    assert gaps[0] >= backoff[0] * 0.9 and gaps[1] >= backoff[1] * 0.9, gaps
    assert info.num_redelivered == 0  # nothing left waiting for redelivery
    assert await stream_messages(bus, DLQ_STREAM) == 0


async def test_a_service_keeps_consuming_after_jetstream_was_briefly_unavailable(
    bus: Bus, settings: Settings, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled: list[str] = []
    after_handled = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        handled.append(event.document_id)
        if event.document_id == "after":
            after_handled.set()

    async def restart_server(*, jetstream: bool) -> None:
        await asyncio.to_thread(nats_server.stop, remove_store=False)  # same ports, same store
        nats_server.jetstream = jetstream
        await asyncio.to_thread(nats_server.start)

    async with running_ingest(settings, handle) as service:
        # Observe the worker's fetches, to know when one has met the JetStream outage.
        [worker] = service.workers
        subscription = worker.subscriber.subscription  # FastStream's pull subscription
        fetch = subscription.fetch
        unavailable = asyncio.Event()

        async def observed_fetch(*args: Any, **kwargs: Any) -> Any:
            try:
                return await fetch(*args, **kwargs)
            except ServiceUnavailableError:
                unavailable.set()
                raise

        monkeypatch.setattr(subscription, "fetch", observed_fetch)

        await restart_server(jetstream=False)
        await asyncio.wait_for(unavailable.wait(), WAIT_S)
        await restart_server(jetstream=True)

        async with asyncio.timeout(WAIT_S):
            while True:  # our own connection is reconnecting too
                try:
                    await Publisher(bus, "test").publish(submitted("after"))
                    break
                except nats.errors.Error:
                    await asyncio.sleep(0.1)
        await asyncio.wait_for(after_handled.wait(), WAIT_S)
        assert service.ready

    assert handled == ["after"]


# ---------------------------------------------------------------- publishing and topology


async def test_a_duplicate_publish_with_the_same_ce_id_is_dropped(bus: Bus, settings: Settings) -> None:
    handled: Counter[str] = Counter()
    sentinel_handled = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        handled[event.document_id] += 1
        if event.document_id == "sentinel":
            sentinel_handled.set()

    publisher = Publisher(bus, "test")
    async with running_ingest(settings, handle):
        first = await publisher.publish(submitted("once"), event_id="same-ce-id")
        second = await publisher.publish(submitted("once"), event_id="same-ce-id")
        assert not first.duplicate
        assert second.duplicate is True
        assert second.seq == first.seq
        assert await stream_messages(bus, INGEST_STREAM) == 1
        # publish_many de-duplicates the same way.
        again = await publish_many(bus, [(submitted("once"), "same-ce-id"), (submitted("sentinel"), None)])
        assert [a.duplicate for a in again] == [True, None]
        await asyncio.wait_for(sentinel_handled.wait(), WAIT_S)
        await wait_consumer_drained(bus, again[1].seq)

    assert await stream_messages(bus, INGEST_STREAM) == 2
    assert handled == Counter({"once": 1, "sentinel": 1})


async def test_topology_creation_is_idempotent(settings: Settings) -> None:
    # Several replicas declare the topology at the same moment on an empty server, then one again.
    buses = await asyncio.gather(*(connect(settings, name=f"replica-{i}") for i in range(3)))
    bus = buses[0]
    try:
        await asyncio.gather(*(ensure_topology(b) for b in buses))
        await ensure_topology(bus)

        expected_streams = {bus.stream_name(s.name) for s in topology.STREAMS}
        expected_buckets = {bus.bucket_name(b.name) for b in topology.BUCKETS}
        expected_objects = {bus.bucket_name(b.name) for b in topology.OBJECT_STORES}
        names = {info.config.name for info in await bus.js.streams_info()}
        stores = {f"KV_{b}" for b in expected_buckets} | {f"OBJ_{b}" for b in expected_objects}
        assert names == expected_streams | stores
        for bucket in expected_buckets:
            await bus.js.key_value(bucket)
        for store in expected_objects:
            await bus.js.object_store(store)

        # Two Service replicas then start against it and share the one durable consumer.
        handled: list[tuple[int, str]] = []
        done = asyncio.Event()

        def handler_of(replica: int) -> Handler:
            async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
                handled.append((replica, event.document_id))
                done.set()

            return handle

        async with running_ingest(settings, handler_of(1)) as one, running_ingest(settings, handler_of(2)) as two:
            assert one.ready and two.ready
            ack = await Publisher(bus, "test").publish(submitted("shared"))
            await asyncio.wait_for(done.wait(), WAIT_S)
            await wait_consumer_drained(bus, ack.seq)
            consumers = await bus.js.consumers_info(bus.stream_name(INGEST_STREAM))
    finally:
        await asyncio.gather(*(b.close() for b in buses))

    assert [c.name for c in consumers] == ["ingest"]
    assert [doc for _, doc in handled] == ["shared"]


# ---------------------------------------------------------------- KV state


async def test_concurrent_document_registry_updates_are_not_lost(bus: Bus, settings: Settings) -> None:
    second = await connect(settings, name="gyre-test-2")
    try:
        registries = [DocumentRegistry(await b.kv("gyre_documents")) for b in (bus, second)]

        def bump(record: DocumentRecord | None) -> DocumentRecord:
            if record is None:
                return DocumentRecord(document_id="doc-1", tenant="acme", version=1)
            return msgspec.structs.replace(record, version=record.version + 1)

        results = await asyncio.wait_for(
            asyncio.gather(*(registries[i % 2].update("acme", "doc-1", bump) for i in range(20))), WAIT_S
        )
    finally:
        await second.close()

    assert sorted(r.version for r in results if r is not None) == list(range(1, 21))
    final = await registries[0].get("acme", "doc-1")
    assert final is not None and final.version == 20


async def test_a_deleted_document_record_is_recreated_by_update(bus: Bus) -> None:
    kv = await bus.kv("gyre_documents")
    registry = DocumentRegistry(kv)
    await registry.update("acme", "doc-9", lambda _: DocumentRecord(document_id="doc-9", tenant="acme", version=3))
    await kv.delete(next(iter(await kv.keys())))
    assert await registry.get("acme", "doc-9") is None

    recreated = await registry.update(
        "acme", "doc-9", lambda r: DocumentRecord(document_id="doc-9", tenant="acme", version=1) if r is None else None
    )
    assert recreated is not None and recreated.version == 1
    stored = await registry.get("acme", "doc-9")
    assert stored is not None and stored.version == 1
