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

Here is the orchestration; the collections it switches between (and dual writing) are in
:mod:`gyre_embed.serving_index`, what is replayed and what of it is kept in :mod:`gyre_embed.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gyre_contracts import (
    ChunksReady,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    ReindexRequested,
    utc_now,
)
from gyre_embed.index_targets import ActiveIndex, ActiveIndexRecord, IndexTarget, TargetFactory
from gyre_embed.replay import (
    CurrentVersion,
    DocumentKey,
    ReplaySource,
    StreamPosition,
    current_version,
    missing_documents,
    replay_verdict,
)
from gyre_embed.serving_index import CollectionBuild, ServingIndex
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from gyre_runtime.vectorstore import Bm25Encoder, IncompatibleCollection
from gyre_runtime.vectorstore.base import check_collection_name

log = get_logger()

MISSING_LISTED = 100  # missing documents named in a report; the rest are only counted


def describe(keys: Sequence[DocumentKey]) -> tuple[str, ...]:
    return tuple(f"{tenant}/{document_id}" for tenant, document_id in keys[:MISSING_LISTED])


class ReindexRefused(Exception):
    """A request that retrying cannot satisfy: answered with a final ReindexFailed, not retried."""

    def __init__(self, message: str, missing: Sequence[DocumentKey] = ()) -> None:
        super().__init__(message)
        self.missing = list(missing)


@dataclass
class ReplayCounts:
    """What the replay did so far, for ReindexProgress, ReindexCompleted and the log."""

    failed: dict[DocumentKey, str] = field(default_factory=dict)  # documents every attempt failed, and why
    replayed: int = 0
    skipped: int = 0
    undecodable: int = 0
    written: int = 0


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
    progress_s: float = 2.0
    drain_timeout_s: float = 60.0

    async def handle(self, request: ReindexRequested, ctx: MessageContext) -> None:
        """The consumer keeps the message in progress while this runs (a rebuild may take hours)."""
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
                await target.drop(keep_model=keep_model)
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
            await active.drop(keep_model=keep_model)
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
            await self.targets.drop_leftover(collection)
            return await self.targets.open(collection, model, share_model_of=active)
        if await target.store.count_all():
            log.info("collection_emptied_before_rebuild", collection=collection)
            await target.drop(keep_model=True)
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
            await self.targets.drop_leftover(recorded.previous_collection)
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
