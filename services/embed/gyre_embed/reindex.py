"""Re-indexing: build a new collection from the stored ChunksReady events while live writes go to both, then swap.

The replica that takes a ReindexRequested message:

1. opens the new collection (emptied if a failed attempt left points in it), with the embedding
   model asked for (default: the active collection's);
2. turns dual writing on: from then on every document this replica indexes or deletes goes to the
   active collection and to the new one;
3. notes the GYRE_EMBED stream's last sequence, then reads the document registry;
4. replays every ChunksReady up to that sequence, keeping only the version the registry says is
   current: superseded versions, deleted documents and documents the registry does not know are
   skipped (a rejected resubmission keeps its previously indexed version, as search does);
   a per-document ledger lets a live write or delete win over a replayed one whichever lands first;
5. checks that every document the registry says is searchable is in the new collection (else it
   refuses to switch, unless ``allow_missing``) and that its point count is what was written;
6. records the new collection in KV (``gyre_index``/``active_collection``), then switches in memory
   in one step: each search runs wholly on the old collection or wholly on the new one;
7. waits for calls still using the old collection, closes and removes it, publishes ReindexCompleted.

Limits: documents whose current ChunksReady is no longer in the stream (older than its retention,
30 days by default, or purged) cannot be replayed: they are listed as missing. Dual writing happens in
the rebuilding replica only: with several embed replicas (Qdrant server) the others keep writing to
the old collection during the rebuild and learn of the switch only when restarted. A crash of the
rebuilding replica restarts the rebuild from the beginning when the message is redelivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from gyre_contracts import (
    ChunksReady,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    ReindexRequested,
    utc_now,
)
from gyre_embed.batching import Vectors
from gyre_embed.index_targets import ActiveIndex, ActiveIndexRecord, IndexTarget, TargetFactory
from gyre_embed.indexing import build_points, embedding_text
from gyre_embed.replay import ReplayedMessage, StreamPosition
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from gyre_runtime.vectorstore import Bm25Encoder, IncompatibleCollection, SparseVector
from gyre_runtime.vectorstore.base import check_collection_name

log = get_logger()

DocumentKey = tuple[str, str]  # (tenant, document_id)
Verdict = Literal["keep", "superseded", "deleted", "unregistered"]
MISSING_LISTED = 100


# ---------------------------------------------------------------------------- what to replay


class CurrentVersion(NamedTuple):
    """What the registry says of a document, as far as re-indexing cares."""

    status: str
    version: int
    searchable: bool  # some version of it is in the active collection, per the registry


def current_version(record: DocumentRecord) -> CurrentVersion:
    # A rejected or pending resubmission leaves the previously indexed version searchable.
    searchable = record.status == "indexed" or (
        record.status in ("rejected", "pending") and record.indexed_at is not None and record.version > 0
    )
    return CurrentVersion(record.status, record.version, searchable)


def replay_verdict(current: CurrentVersion | None, version: int) -> Verdict:
    """Whether a replayed ChunksReady of ``version`` belongs in the new collection."""
    if current is None:
        return "unregistered"
    if current.status == "deleted":
        return "deleted"
    if version != current.version:
        return "superseded"
    return "keep"


def missing_documents(
    snapshot: Mapping[DocumentKey, CurrentVersion], holds: Callable[[DocumentKey], bool]
) -> list[DocumentKey]:
    """Searchable documents the new collection does not hold (nor saw deleted while it was built)."""
    return sorted(key for key, current in snapshot.items() if current.searchable and not holds(key))


def describe(keys: Sequence[DocumentKey]) -> tuple[str, ...]:
    return tuple(f"{tenant}/{document_id}" for tenant, document_id in keys[:MISSING_LISTED])


# ---------------------------------------------------------------------------- the collection being built


Write = Callable[[], Awaitable[None]]


class RebuildLedger:
    """What the collection being built holds, per document, while live events and the replay both write to it.

    Higher versions win whichever path writes them; a live delete wins over every version it covers
    (those sent before it), replayed or live, and never removes a version sent after it. Writes of one
    document are serialised.
    """

    def __init__(self, stripes: int = 64) -> None:
        self._held: dict[DocumentKey, tuple[int, int]] = {}  # version, points
        self._deleted: dict[DocumentKey, int] = {}  # the last version a live delete covered
        self._locks = [asyncio.Lock() for _ in range(stripes)]

    def _lock(self, key: DocumentKey) -> asyncio.Lock:
        return self._locks[hash(key) % len(self._locks)]

    def wants_replay(self, key: DocumentKey, version: int) -> bool:
        if version <= self._deleted.get(key, 0):
            return False
        held = self._held.get(key)
        return held is None or held[0] < version

    async def write_replayed(self, key: DocumentKey, version: int, points: int, write: Write) -> bool:
        async with self._lock(key):
            if not self.wants_replay(key, version):
                return False
            await write()
            self._held[key] = (version, points)
            return True

    async def write_live(self, key: DocumentKey, version: int, points: int, write: Write) -> bool:
        async with self._lock(key):
            held = self._held.get(key)
            if held is not None and held[0] > version:
                return False  # an older version handled late: the newer one stays
            if version <= self._deleted.get(key, 0):
                return False  # a version a deletion covered, handled late: it stays deleted
            await write()
            self._held[key] = (version, points)
            return True

    async def delete_live(self, key: DocumentKey, up_to_version: int, delete: Write) -> None:
        async with self._lock(key):
            await delete()
            held = self._held.get(key)
            if held is not None and held[0] <= up_to_version:
                del self._held[key]
            self._deleted[key] = max(self._deleted.get(key, 0), up_to_version)

    def holds(self, key: DocumentKey) -> bool:
        """The document is in the collection, or was deleted while it was built."""
        return key in self._held or key in self._deleted

    def held(self) -> dict[DocumentKey, int]:
        return {key: version for key, (version, _) in self._held.items()}

    @property
    def documents(self) -> int:
        return len(self._held)

    @property
    def points(self) -> int:
        return sum(points for _, points in self._held.values())

    @contextlib.asynccontextmanager
    async def frozen(self) -> AsyncIterator[None]:
        """No write lands while inside: the collection and the ledger agree for a count and a switch."""
        async with contextlib.AsyncExitStack() as stack:
            for lock in self._locks:
                await stack.enter_async_context(lock)
            yield


@dataclass(eq=False)
class CollectionBuild:
    """A collection being rebuilt: live writes and replayed events both go through its ledger."""

    target: IndexTarget
    sparse: Bm25Encoder
    ledger: RebuildLedger = field(default_factory=RebuildLedger)

    async def _points_written(
        self, event: ChunksReady, texts: list[str], sparse: Sequence[SparseVector | None], vectors: Vectors | None
    ) -> tuple[int, Write]:
        if vectors is None:  # another model than the active collection's: embed again
            vectors = await self.target.scheduler.embed_bulk(texts)
        points = build_points(event, vectors, sparse)

        async def write() -> None:
            await self.target.store.replace_document(event.tenant, event.document_id, event.version, points)

        return len(points), write

    async def index_live(
        self, event: ChunksReady, texts: list[str], sparse: Sequence[SparseVector | None], vectors: Vectors | None
    ) -> None:
        """``vectors``: the active collection's, when both use the same model."""
        if self.target.closed:
            return  # the rebuild was abandoned meanwhile
        async with self.target.use():
            count, write = await self._points_written(event, texts, sparse, vectors)
            await self.ledger.write_live((event.tenant, event.document_id), event.version, count, write)

    async def delete_live(self, tenant: str, document_id: str, up_to_version: int | None) -> None:
        """A deletion of the versions up to ``up_to_version`` (None: every version) in the collection being built."""
        if self.target.closed:
            return
        covered = up_to_version if up_to_version is not None else sys.maxsize
        async with self.target.use():
            await self.ledger.delete_live(
                (tenant, document_id), covered,
                lambda: self.target.store.delete_document(tenant, document_id, up_to_version=up_to_version),
            )

    async def replay(self, event: ChunksReady) -> bool:
        """Write a replayed version unless a live write or delete of the document got there first."""
        key = (event.tenant, event.document_id)
        if not self.ledger.wants_replay(key, event.version):
            return False
        texts = [embedding_text(c, event.title) for c in event.chunks]
        sparse = [self.sparse.encode_document(t) for t in texts]
        async with self.target.use():
            count, write = await self._points_written(event, texts, sparse, None)
            return await self.ledger.write_replayed(key, event.version, count, write)


@dataclass(eq=False)
class ServingIndex:
    """The collection answering searches now, and the one being built to replace it, if any.

    Handlers read both at the start of a call, without awaiting in between, so that a call sees one
    consistent pair; a switch replaces both in one step.
    """

    active: IndexTarget
    build: CollectionBuild | None = None


# ---------------------------------------------------------------------------- the rebuild


class ReplaySource(Protocol):
    """Where the stored events and the registry are read from (the bus: :class:`gyre_embed.replay`)."""

    async def position(self) -> StreamPosition: ...

    def messages(self, *, up_to: int) -> AsyncIterator[ReplayedMessage]: ...

    def records(self) -> AsyncIterator[DocumentRecord]: ...


class ReindexRefused(Exception):
    """A request that retrying cannot satisfy: answered with a final ReindexFailed, not retried."""

    def __init__(self, message: str, missing: Sequence[DocumentKey] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


@dataclass
class ReplayCounts:
    replayed: int = 0
    skipped: int = 0
    undecodable: int = 0
    written: int = 0
    failed: dict[DocumentKey, str] = field(default_factory=dict)


@dataclass
class Reindexer:
    """Runs one ReindexRequested to its end: ReindexCompleted, or ReindexFailed with the reason."""

    serving: ServingIndex
    targets: TargetFactory
    source: ReplaySource
    active_record: ActiveIndexRecord
    registry: DocumentRegistry
    publisher: Publisher
    sparse: Bm25Encoder
    max_deliver: int
    on_switch: Callable[[IndexTarget], Awaitable[None]] | None = None
    replay_concurrency: int = 8
    replay_retry_s: float = 1.0  # pause before a failed document's next attempt (times the attempt)
    heartbeat_s: float = 15.0
    progress_s: float = 2.0
    drain_timeout_s: float = 60.0

    async def handle(self, request: ReindexRequested, ctx: MessageContext) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(ctx), name="reindex-heartbeat")
        try:
            await self._run(request)
        except ReindexRefused as exc:
            log.warning("reindex_refused", collection=request.collection, error=str(exc))
            await self._failed(request, ctx, str(exc), final=True, missing=exc.missing)
        except Exception as exc:
            final = ctx.delivery >= self.max_deliver
            log.exception("reindex_failed", collection=request.collection, attempt=ctx.delivery, final=final)
            await self._failed(request, ctx, f"{type(exc).__name__}: {exc}", final=final)
            raise  # retried with back-off; dead-lettered after the last attempt
        finally:
            heartbeat.cancel()

    async def _heartbeat(self, ctx: MessageContext) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await ctx.in_progress()
            except Exception as exc:  # the next beat may get through; a redelivery restarts the rebuild anyway
                log.warning("reindex_heartbeat_failed", error=str(exc))

    async def _failed(
        self, request: ReindexRequested, ctx: MessageContext, error: str, *, final: bool,
        missing: Sequence[DocumentKey] = (),
    ) -> None:
        with contextlib.suppress(Exception):
            await self.publisher.publish(
                ReindexFailed(
                    tenant=request.tenant, request_id=request.request_id, collection=request.collection,
                    error=error, attempt=ctx.delivery, final=final, missing_count=len(missing),
                    missing_documents=describe(missing),
                ),
                event_id=derived_id("reindex-failed", request.request_id, ctx.delivery),
            )

    async def _run(self, request: ReindexRequested) -> None:
        started = time.perf_counter()
        active = self.serving.active
        if request.collection == active.collection:
            recorded = await self.active_record.get()
            if recorded is not None and recorded.request_id == request.request_id:
                await self._finish_after_restart(request, recorded, started)
                return
            raise ReindexRefused(f"{request.collection!r} is the active collection already; name a new one")
        try:
            check_collection_name(request.collection)
        except ValueError as exc:
            raise ReindexRefused(str(exc)) from exc
        model = request.embedding_model or active.model
        if not self.targets.has_model(model):
            raise ReindexRefused(f"no embedding model {model!r} in the model store (build it first)")
        if self.serving.build is not None:
            raise RuntimeError(f"this replica is already building {self.serving.build.target.collection!r}")

        target = await self._open_empty(request.collection, model, active)
        keep_model = target.shares_model_with(active)
        build = CollectionBuild(target, self.sparse)
        self.serving.build = build  # dual writing on
        log.info("reindex_started", collection=target.collection, previous=active.collection, model=model)
        try:
            # The stream's end is taken after dual writing is on: later events are written live, and
            # the registry after that, so that it knows every version the replay will meet.
            position = await self.source.position()
            snapshot = {(r.tenant, r.document_id): current_version(r) async for r in self.source.records()}
            counts = await self._replay(request, build, position, snapshot)
            missing = missing_documents(snapshot, build.ledger.holds)
            # A document that failed but was not searchable anyway (e.g. stuck pending) does not hold
            # the switch up; a searchable one does: the attempt is retried.
            failed = [key for key in counts.failed if key in snapshot and snapshot[key].searchable]
            if failed and not request.allow_missing:
                raise RuntimeError(f"{len(failed)} searchable documents could not be re-indexed, e.g. "
                                   f"{failed[0]}: {counts.failed[failed[0]]}")
            if missing and not request.allow_missing:
                raise ReindexRefused(
                    f"{len(missing)} searchable documents are not in the stream any more (older than its "
                    "retention?): switching would drop them from search; resubmit them, or switch anyway "
                    "with `gyre reindex --allow-missing`", missing,
                )
            previous_points = await active.store.count_all()
            async with build.ledger.frozen():
                points = await target.store.count_all()
                if points != build.ledger.points:
                    raise RuntimeError(
                        f"collection {target.collection!r} holds {points} points, {build.ledger.points} were written"
                    )
                documents, held = build.ledger.documents, build.ledger.held()
                await self.active_record.put(ActiveIndex(
                    collection=target.collection, embedding_model=model, previous_collection=active.collection,
                    request_id=request.request_id, switched_at=utc_now(),
                ))
                self.serving.active, self.serving.build = target, None  # the switch
        except BaseException:
            self.serving.build = None
            await target.drain(10.0)
            with contextlib.suppress(Exception):
                await self.targets.remove(target, keep_model=keep_model)
            raise
        log.info("collection_switched", collection=target.collection, previous=active.collection,
                 documents=documents, points=points)
        if self.on_switch is not None:
            try:
                await self.on_switch(target)
            except Exception as exc:  # the switch is done and recorded: report it as done
                log.warning("on_switch_failed", collection=target.collection, error=str(exc))
        if not await active.drain(self.drain_timeout_s):
            log.warning("previous_collection_still_in_use", collection=active.collection)
        try:
            await self.targets.remove(active, keep_model=keep_model)
        except Exception as exc:  # the switch is done; a leftover collection is only disk space
            log.warning("previous_collection_not_removed", collection=active.collection, error=str(exc))
        if model != active.model:
            await self._record_model(held, target)
        await self._completed(
            request, previous=active.collection, model=target.embedder.version, documents=documents,
            points=points, previous_points=previous_points, counts=counts, missing=missing, started=started,
        )

    async def _open_empty(self, collection: str, model: str, active: IndexTarget) -> IndexTarget:
        """The collection to build, emptied of whatever an earlier, failed attempt left in it."""
        try:
            target = await self.targets.open(collection, model, share_model_of=active)
        except IncompatibleCollection:
            await self.targets.remove_leftover(collection)
            return await self.targets.open(collection, model, share_model_of=active)
        if await target.store.count_all():
            log.info("collection_emptied_before_rebuild", collection=collection)
            await self.targets.remove(target, keep_model=True)
            reused = target if not target.shares_model_with(active) else active
            return await self.targets.open(collection, model, share_model_of=reused)
        return target

    async def _replay(
        self, request: ReindexRequested, build: CollectionBuild, position: StreamPosition,
        snapshot: Mapping[DocumentKey, CurrentVersion],
    ) -> ReplayCounts:
        counts = ReplayCounts()
        slots = asyncio.Semaphore(self.replay_concurrency)
        tasks: set[asyncio.Task[None]] = set()

        async def replay_one(event: ChunksReady) -> None:
            key = (event.tenant, event.document_id)
            try:
                for attempt in range(1, 4):
                    try:
                        if await build.replay(event):
                            counts.written += 1
                        return
                    except Exception as exc:
                        if attempt == 3:
                            counts.failed[key] = f"{type(exc).__name__}: {exc}"
                            log.warning("replay_failed", document_id=event.document_id, tenant=event.tenant,
                                        version=event.version, error=counts.failed[key])
                        else:
                            await asyncio.sleep(self.replay_retry_s * attempt)
            finally:
                slots.release()

        await self._progress(request, build, counts, position)
        reported = time.monotonic()
        try:
            async for message in self.source.messages(up_to=position.last):
                counts.replayed += 1
                if message.event is None:
                    counts.undecodable += 1
                    log.warning("replay_undecodable", sequence=message.sequence, error=message.error)
                    continue
                event = message.event
                if replay_verdict(snapshot.get((event.tenant, event.document_id)), event.version) != "keep":
                    counts.skipped += 1
                    continue
                await slots.acquire()
                task = asyncio.create_task(replay_one(event))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                if time.monotonic() - reported >= self.progress_s:
                    await self._progress(request, build, counts, position)
                    reported = time.monotonic()
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        await self._progress(request, build, counts, position)
        log.info("replay_done", replayed=counts.replayed, written=counts.written, skipped=counts.skipped,
                 undecodable=counts.undecodable, failed=len(counts.failed))
        return counts

    async def _progress(
        self, request: ReindexRequested, build: CollectionBuild, counts: ReplayCounts, position: StreamPosition
    ) -> None:
        with contextlib.suppress(Exception):  # progress is for people watching: never fails the rebuild
            await self.publisher.publish(ReindexProgress(
                tenant=request.tenant, request_id=request.request_id, collection=request.collection,
                replayed_events=counts.replayed, stream_events=position.messages,
                documents=build.ledger.documents, points=build.ledger.points,
            ))

    async def _record_model(self, held: Mapping[DocumentKey, int], target: IndexTarget) -> None:
        """Registry records say which model embedded each document: the new one now."""
        model = target.embedder.version
        slots = asyncio.Semaphore(16)

        async def one(key: DocumentKey, version: int) -> None:
            def change(record: DocumentRecord | None) -> DocumentRecord | None:
                if record is None or record.version != version or record.embedding_model == model:
                    return None
                record.embedding_model = model
                return record

            async with slots:
                with contextlib.suppress(Exception):
                    await self.registry.update(key[0], key[1], change)

        await asyncio.gather(*(one(key, version) for key, version in held.items()))

    async def _finish_after_restart(self, request: ReindexRequested, recorded: ActiveIndex, started: float) -> None:
        """The switch was recorded, then this replica stopped before finishing: tidy up and report."""
        if recorded.previous_collection:
            await self.targets.remove_leftover(recorded.previous_collection)
        active = self.serving.active
        points = await active.store.count_all()
        await self._completed(
            request, previous=recorded.previous_collection, model=active.embedder.version, documents=0,
            points=points, previous_points=0, counts=ReplayCounts(), missing=[], started=started,
        )

    async def _completed(
        self, request: ReindexRequested, *, previous: str, model: str, documents: int, points: int,
        previous_points: int, counts: ReplayCounts, missing: Sequence[DocumentKey], started: float,
    ) -> None:
        duration_ms = (time.perf_counter() - started) * 1000
        await self.publisher.publish(
            ReindexCompleted(
                tenant=request.tenant, request_id=request.request_id, collection=request.collection,
                previous_collection=previous, embedding_model=model, documents=documents, points=points,
                previous_points=previous_points, replayed_events=counts.replayed, skipped_events=counts.skipped,
                missing_count=len(missing), missing_documents=describe(missing), duration_ms=duration_ms,
            ),
            event_id=derived_id("reindexed", request.request_id),
        )
        log.info("reindex_completed", collection=request.collection, previous=previous, documents=documents,
                 points=points, previous_points=previous_points, duration_ms=round(duration_ms, 1))
