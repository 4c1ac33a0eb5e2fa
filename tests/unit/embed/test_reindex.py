"""Re-indexing: which replayed events are kept, live writes beating replayed ones, the rebuild on stand-ins."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from gyre_contracts import (
    Chunk,
    ChunksReady,
    DocumentDeletionRequested,
    Event,
    ReindexCompleted,
    ReindexFailed,
    ReindexRequested,
)
from gyre_embed.batching import EmbeddingScheduler
from gyre_embed.handlers import EmbedHandlers
from gyre_embed.index_targets import ActiveIndex, IndexTarget
from gyre_embed.reindex import Reindexer
from gyre_embed.replay import (
    CurrentVersion,
    ReplayedMessage,
    StreamPosition,
    current_version,
    missing_documents,
    replay_verdict,
)
from gyre_embed.serving_index import CollectionBuild, RebuildLedger, ServingIndex
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.state.documents import DocumentRecord
from gyre_runtime.vectorstore import Bm25Encoder, SearchHit, VectorPoint

WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
TENANT = "t"


# ---------------------------------------------------------------------------- which events are kept


def record(status: str, version: int, indexed: bool = True) -> DocumentRecord:
    return DocumentRecord(document_id="d", tenant=TENANT, status=status, version=version,  # type: ignore[arg-type]
                          indexed_at=WHEN if indexed else None)


def test_only_the_version_the_registry_names_is_replayed() -> None:
    current = current_version(record("indexed", 3))
    assert replay_verdict(current, 3) == "keep"
    assert replay_verdict(current, 2) == "superseded"


def test_deleted_and_unregistered_documents_are_not_replayed() -> None:
    assert replay_verdict(current_version(record("deleted", 2)), 2) == "deleted"
    assert replay_verdict(None, 1) == "unregistered"


def test_a_rejected_resubmission_keeps_its_previously_indexed_version() -> None:
    # A rejected resubmission leaves the version number on the indexed one, which stays searchable.
    current = current_version(record("rejected", 2))
    assert current.searchable and replay_verdict(current, 2) == "keep"
    never_indexed = current_version(record("rejected", 0, indexed=False))
    assert not never_indexed.searchable and replay_verdict(never_indexed, 1) == "superseded"


def test_pending_documents_count_as_searchable_only_when_an_earlier_version_was_indexed() -> None:
    assert not current_version(record("pending", 1, indexed=False)).searchable
    assert current_version(record("pending", 2, indexed=True)).searchable
    assert not current_version(record("deleted", 2)).searchable


def test_missing_documents_are_searchable_ones_the_new_collection_neither_holds_nor_saw_deleted() -> None:
    snapshot = {
        ("t", "held"): CurrentVersion("indexed", 1, True),
        ("t", "gone"): CurrentVersion("indexed", 1, True),
        ("t", "aged-out"): CurrentVersion("indexed", 1, True),
        ("t", "pending"): CurrentVersion("pending", 1, False),
    }
    assert missing_documents(snapshot, lambda key: key[1] in ("held", "gone")) == [("t", "aged-out")]


# ---------------------------------------------------------------------------- the ledger


class Writes:
    def __init__(self) -> None:
        self.log: list[str] = []

    def of(self, what: str) -> Callable[[], Awaitable[None]]:
        async def write() -> None:
            self.log.append(what)

        return write


async def test_a_live_write_wins_over_a_replayed_older_or_equal_version() -> None:
    ledger, writes, key = RebuildLedger(), Writes(), ("t", "d")
    assert await ledger.write_live(key, 2, 5, writes.of("live v2"))
    assert not ledger.wants_replay(key, 2) and not ledger.wants_replay(key, 1)
    assert not await ledger.write_replayed(key, 1, 3, writes.of("replay v1"))
    assert writes.log == ["live v2"] and (ledger.documents, ledger.points) == (1, 5)


async def test_a_newer_live_version_replaces_a_replayed_one_and_a_late_older_live_write_is_ignored() -> None:
    ledger, writes, key = RebuildLedger(), Writes(), ("t", "d")
    assert await ledger.write_replayed(key, 1, 3, writes.of("replay v1"))
    assert await ledger.write_live(key, 2, 4, writes.of("live v2"))
    assert not await ledger.write_live(key, 1, 3, writes.of("late live v1"))
    assert writes.log == ["replay v1", "live v2"] and ledger.held() == {key: 2} and ledger.points == 4


async def test_a_live_delete_wins_over_every_version_it_covers_and_a_later_version_still_comes_in() -> None:
    ledger, writes, key = RebuildLedger(), Writes(), ("t", "d")
    await ledger.write_replayed(key, 1, 3, writes.of("replay v1"))
    await ledger.delete_live(key, 1, writes.of("delete up to v1"))
    assert not ledger.wants_replay(key, 1) and ledger.holds(key) and ledger.documents == 0
    assert not await ledger.write_live(key, 1, 3, writes.of("late live v1"))
    assert await ledger.write_live(key, 2, 2, writes.of("live v2"))
    assert ledger.held() == {key: 2} and writes.log == ["replay v1", "delete up to v1", "live v2"]


async def test_a_late_delete_during_a_rebuild_never_removes_a_version_sent_after_it() -> None:
    # The deletion covered v1; v2 (sent after it) was written live first and must stay.
    ledger, writes, key = RebuildLedger(), Writes(), ("t", "d")
    assert await ledger.write_live(key, 2, 4, writes.of("live v2"))
    await ledger.delete_live(key, 1, writes.of("delete up to v1"))
    assert ledger.held() == {key: 2} and ledger.points == 4
    assert ledger.wants_replay(key, 3) and not ledger.wants_replay(key, 1)


async def test_nothing_is_written_while_the_ledger_is_frozen() -> None:
    ledger, writes = RebuildLedger(), Writes()
    async with ledger.frozen():
        task = asyncio.create_task(ledger.write_live(("t", "d"), 1, 1, writes.of("live")))
        await asyncio.sleep(0.01)
        assert writes.log == []
    await task
    assert writes.log == ["live"]


# ---------------------------------------------------------------------------- in-memory stand-ins


class FakeModel:
    def __init__(self, name: str, dimension: int) -> None:
        self.name, self._dimension = name, dimension
        self.texts = 0

    @property
    def version(self) -> str:
        return f"{self.name}:1:abc"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts += len(texts)
        return [[float(len(t) % 7 + 1)] * self._dimension for t in texts]


class MemoryStore:
    """The VectorStore port over a dict; ``fail_writes`` makes every write raise."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.points: dict[str, tuple[str, str, int, VectorPoint]] = {}
        self.closed = False
        self.home: dict[str, MemoryStore] = {}  # the collections it is one of, under ``collection``
        self.collection = ""
        self.fail_writes = False
        self.failing_documents: set[str] = set()

    async def replace_document(self, tenant: str, document_id: str, version: int, points: list[VectorPoint]) -> None:
        if self.fail_writes or document_id in self.failing_documents:
            raise OSError("disk full")
        assert not self.closed and all(len(p.vector) == self.dimension for p in points)
        for p in points:
            self.points[p.id] = (tenant, document_id, version, p)
        for pid, (t, d, v, _) in list(self.points.items()):
            if (t, d) == (tenant, document_id) and v < version:
                del self.points[pid]

    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        assert not self.closed
        for pid, (t, d, v, _) in list(self.points.items()):
            if (t, d) == (tenant, document_id) and (up_to_version is None or v <= up_to_version):
                del self.points[pid]

    async def search(self, tenant: str, **kwargs: Any) -> list[SearchHit]:
        return []

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        return sum(1 for t, d, _, _ in self.points.values() if t == tenant and document_id in (None, d))

    async def count_all(self) -> int:
        return len(self.points)

    async def close(self) -> None:
        self.closed = True

    async def drop(self) -> None:
        self.closed = True
        if self.home.get(self.collection) is self:
            del self.home[self.collection]

    def documents(self) -> dict[str, int]:
        return {d: v for _, d, v, _ in self.points.values()}


class FakeTargets:
    """Collections that outlive their targets (as on disk) until dropped, models by name."""

    def __init__(self, models: Mapping[str, int]) -> None:
        self.dimensions = dict(models)
        self.collections: dict[str, MemoryStore] = {}
        self.models: list[FakeModel] = []

    def has_model(self, model: str) -> bool:
        return model in self.dimensions

    async def open(self, collection: str, model: str, *, share_model_of: IndexTarget | None) -> IndexTarget:
        if share_model_of is not None and share_model_of.model == model:
            embedder, scheduler = share_model_of.embedder, share_model_of.scheduler
        else:
            fake = FakeModel(model, self.dimensions[model])
            self.models.append(fake)
            embedder, scheduler = fake, EmbeddingScheduler(fake.embed, max_batch=8, max_wait_s=0.0)
        store = self.collections.setdefault(collection, MemoryStore(embedder.dimension))
        store.closed, store.home, store.collection = False, self.collections, collection
        return IndexTarget(collection=collection, model=model, embedder=embedder, scheduler=scheduler,
                           store=store)  # type: ignore[arg-type]

    async def drop_leftover(self, collection: str) -> None:
        self.collections.pop(collection, None)


def chunks_ready(document_id: str, version: int, chunks: int = 2) -> ChunksReady:
    return ChunksReady(
        tenant=TENANT, document_id=document_id, version=version, submitted_at=WHEN,
        chunks=tuple(Chunk(index=i, text=f"{document_id} v{version} part {i}", start=0, end=1, token_count=3)
                     for i in range(chunks)),
    )


class FakeSource:
    """The stored events and the registry; ``during_replay`` runs before the event of that sequence."""

    def __init__(self, events: list[ChunksReady], records: list[DocumentRecord]) -> None:
        self.events = events
        self.registry = {(r.tenant, r.document_id): r for r in records}
        self.during_replay: dict[int, Callable[[], Awaitable[None]]] = {}

    async def position(self) -> StreamPosition:
        return StreamPosition(first=1, last=len(self.events), messages=len(self.events))

    async def messages(self, *, up_to: int) -> AsyncIterator[ReplayedMessage]:
        for sequence, event in enumerate(self.events[:up_to], start=1):
            if sequence in self.during_replay:
                await self.during_replay[sequence]()
            yield ReplayedMessage(sequence, event)

    async def records(self) -> AsyncIterator[DocumentRecord]:
        for r in list(self.registry.values()):
            yield r


class FakeRegistry:
    def __init__(self, source: FakeSource) -> None:
        self.source = source

    async def get(self, tenant: str, document_id: str) -> DocumentRecord | None:
        return self.source.registry.get((tenant, document_id))

    async def update(
        self, tenant: str, document_id: str, change: Callable[[DocumentRecord | None], DocumentRecord | None]
    ) -> DocumentRecord | None:
        new = change(self.source.registry.get((tenant, document_id)))
        if new is not None:
            self.source.registry[(tenant, document_id)] = new
        return new


class FakeActiveRecord:
    def __init__(self) -> None:
        self.value: ActiveIndex | None = None

    async def get(self) -> ActiveIndex | None:
        return self.value

    async def put(self, active: ActiveIndex) -> None:
        self.value = active


class FakePublisher:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event, **kwargs: Any) -> None:
        self.events.append(event)

    def of(self, cls: type[Event]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


def indexed(document_id: str, version: int = 1, status: str = "indexed") -> DocumentRecord:
    return DocumentRecord(document_id=document_id, tenant=TENANT, status=status,  # type: ignore[arg-type]
                          version=version, indexed_at=WHEN)


class Rig:
    """An embed replica's serving state and reindexer over the stand-ins, the active collection filled."""

    def __init__(self, events: list[ChunksReady], records: list[DocumentRecord], models: Mapping[str, int]) -> None:
        self.targets = FakeTargets(models)
        self.source = FakeSource(events, records)
        self.publisher = FakePublisher()
        self.record = FakeActiveRecord()
        self.events, self.models = events, models

    async def start(self) -> None:
        active = await self.targets.open("old", "model-a", share_model_of=None)
        self.serving = ServingIndex(active=active)
        sparse = Bm25Encoder()
        registry: Any = FakeRegistry(self.source)
        self.reindexer = Reindexer(
            serving=self.serving, targets=self.targets, source=self.source,
            active_record=self.record, registry=registry, publisher=self.publisher,  # type: ignore[arg-type]
            sparse=sparse, max_deliver=3, replay_concurrency=2, replay_retry_s=0.0,
        )
        self.handlers = EmbedHandlers(serving=self.serving, sparse=sparse, registry=registry,
                                      publisher=self.publisher, reindexer=self.reindexer)  # type: ignore[arg-type]
        for event in self.events:  # what live indexing did before the rebuild
            if replay_verdict(current_version(self.source.registry[(TENANT, event.document_id)]),
                              event.version) == "keep":
                await self.handlers.index(event, context())

    async def reindex(self, delivery: int = 1, **request: Any) -> ReindexRequested:
        event = ReindexRequested(collection=request.pop("collection", "new"), **request)
        await self.handlers.reindex(event, context(delivery))
        return event

    def store(self, collection: str) -> MemoryStore:
        return self.targets.collections[collection]


def context(delivery: int = 1) -> MessageContext:
    return MessageContext(subject="s", event_id="e", tenant=TENANT, traceparent=None, delivery=delivery, headers={})


def stored_events() -> tuple[list[ChunksReady], list[DocumentRecord]]:
    events = [chunks_ready("a", 1), chunks_ready("b", 1), chunks_ready("a", 2, chunks=3), chunks_ready("gone", 1),
              chunks_ready("c", 1)]
    records = [indexed("a", 2), indexed("b"), indexed("gone", status="deleted"), indexed("c")]
    return events, records


# ---------------------------------------------------------------------------- the rebuild


async def test_the_rebuild_holds_each_documents_current_version_then_serves_search_and_the_old_one_is_gone() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    old = rig.serving.active
    request = await rig.reindex()

    assert rig.serving.active.collection == "new" and rig.serving.build is None
    assert rig.store("new").documents() == {"a": 2, "b": 1, "c": 1}
    assert "old" not in rig.targets.collections and old.closed
    assert rig.record.value is not None and rig.record.value.collection == "new"
    assert rig.record.value.previous_collection == "old" and rig.record.value.request_id == request.request_id
    [done] = rig.publisher.of(ReindexCompleted)
    assert (done.collection, done.previous_collection, done.documents, done.points) == ("new", "old", 3, 7)
    assert (done.previous_points, done.replayed_events, done.skipped_events) == (7, 5, 2)
    assert rig.targets.models[0].texts > 0 and len(rig.targets.models) == 1  # the same model, shared


async def test_documents_indexed_and_deleted_during_the_rebuild_are_in_the_new_collection_as_they_are_live() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()

    async def live_changes() -> None:
        assert rig.serving.build is not None  # dual writing is on while the replay runs
        rig.source.registry[(TENANT, "fresh")] = indexed("fresh", status="pending")
        await rig.handlers.index(chunks_ready("fresh", 1), context())
        rig.source.registry[(TENANT, "c")] = indexed("c", status="deleted")
        await rig.handlers.delete(DocumentDeletionRequested(tenant=TENANT, document_id="c"), context())
        rig.source.registry[(TENANT, "b")] = indexed("b", 2, status="pending")
        await rig.handlers.index(chunks_ready("b", 2, chunks=1), context())

    rig.source.during_replay[2] = live_changes  # before "b" v1 and "c" are replayed
    await rig.reindex()

    expected = {"a": 2, "b": 2, "fresh": 1}
    assert rig.store("new").documents() == expected
    assert rig.serving.active.collection == "new"
    [done] = rig.publisher.of(ReindexCompleted)
    assert done.points == await rig.store("new").count_all() == 3 + 1 + 2


async def test_a_rebuild_with_another_model_switches_queries_to_that_model_too() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4, "model-b": 6})
    await rig.start()
    old_scheduler = rig.serving.active.scheduler
    await rig.reindex(embedding_model="model-b")

    active = rig.serving.active
    assert active.model == "model-b" and active.embedder.dimension == 6
    assert all(len(p.vector) == 6 for *_, p in rig.store("new").points.values())
    assert active.scheduler is not old_scheduler and old_scheduler._task is None  # the old model is unloaded
    [done] = rig.publisher.of(ReindexCompleted)
    assert done.embedding_model == "model-b:1:abc"
    assert rig.source.registry[(TENANT, "a")].embedding_model == "model-b:1:abc"


async def test_a_rebuild_that_would_drop_documents_no_longer_in_the_stream_is_refused() -> None:
    events, records = stored_events()
    rig = Rig(events, [*records, indexed("aged-out")], models={"model-a": 4})
    await rig.start()
    await rig.reindex()

    assert rig.serving.active.collection == "old" and rig.serving.build is None
    assert "new" not in rig.targets.collections
    [failed] = rig.publisher.of(ReindexFailed)
    assert failed.final and failed.missing_count == 1 and failed.missing_documents == ("t/aged-out",)
    assert not rig.publisher.of(ReindexCompleted)


async def test_allow_missing_switches_anyway_and_reports_what_is_missing() -> None:
    events, records = stored_events()
    rig = Rig(events, [*records, indexed("aged-out")], models={"model-a": 4})
    await rig.start()
    await rig.reindex(allow_missing=True)

    [done] = rig.publisher.of(ReindexCompleted)
    assert rig.serving.active.collection == "new" and done.missing_documents == ("t/aged-out",)


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [
        ({"collection": "old"}, "is the active collection already"),
        ({"embedding_model": "nope"}, "no embedding model 'nope'"),
        ({"collection": "bad name!"}, "collection names are"),
    ],
)
async def test_requests_that_cannot_succeed_are_answered_with_a_final_failure(
    request_fields: dict[str, Any], error: str
) -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    await rig.reindex(**request_fields)  # does not raise: nothing to retry

    [failed] = rig.publisher.of(ReindexFailed)
    assert failed.final and error in failed.error
    assert rig.serving.active.collection == "old" and set(rig.targets.collections) == {"old"}


async def test_a_failing_rebuild_is_retried_and_leaves_search_on_the_old_collection() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    broken = MemoryStore(4)
    broken.fail_writes = True
    rig.targets.collections["new"] = broken
    with pytest.raises(RuntimeError, match="could not be re-indexed"):
        await rig.reindex(delivery=1)

    [failed] = rig.publisher.of(ReindexFailed)
    assert not failed.final and failed.attempt == 1
    assert rig.serving.active.collection == "old" and rig.serving.build is None
    assert "new" not in rig.targets.collections and not rig.store("old").closed


async def test_a_document_that_fails_but_was_not_searchable_anyway_does_not_hold_the_switch_up() -> None:
    events, records = stored_events()
    rig = Rig([*events, chunks_ready("stuck", 1)], [*records, indexed("stuck", status="pending")],
              models={"model-a": 4})
    await rig.start()
    # Its live indexing kept failing: still pending, never indexed, so not searchable.
    rig.source.registry[(TENANT, "stuck")] = DocumentRecord(document_id="stuck", tenant=TENANT, version=1)
    failing = MemoryStore(4)
    failing.failing_documents.add("stuck")
    rig.targets.collections["new"] = failing
    await rig.reindex()

    assert rig.serving.active.collection == "new" and "stuck" not in rig.store("new").documents()


async def test_points_a_failed_attempt_left_in_the_collection_are_cleared_first() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    leftover = MemoryStore(4)
    await leftover.replace_document(TENANT, "stale", 1, [VectorPoint(id="x", vector=[0.0] * 4, payload={})])
    rig.targets.collections["new"] = leftover
    await rig.reindex()

    assert "stale" not in rig.store("new").documents() and rig.serving.active.collection == "new"


async def test_a_redelivery_after_the_switch_was_recorded_only_finishes_the_job() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    request = await rig.reindex()
    rig.publisher.events.clear()
    rig.targets.collections["old"] = MemoryStore(4)  # as if the replica died before removing it

    await rig.handlers.reindex(request, context(2))
    [done] = rig.publisher.of(ReindexCompleted)
    assert done.previous_collection == "old" and "old" not in rig.targets.collections
    assert rig.serving.active.collection == "new"


async def test_stopping_closes_the_serving_collection_and_the_one_being_built_without_dropping_them() -> None:
    rig = Rig(*stored_events(), models={"model-a": 4})
    await rig.start()
    active = rig.serving.active
    building = await rig.targets.open("new", "model-a", share_model_of=active)
    rig.serving.build = CollectionBuild(building, Bm25Encoder())
    await rig.serving.close()

    assert active.closed and building.closed and rig.store("old").closed and rig.store("new").closed
    assert active.scheduler._task is None  # the model both shared is stopped
    assert set(rig.targets.collections) == {"old", "new"}
