"""The collection answering searches, and the one a rebuild fills beside it: live writes go to both.

A rebuild (:mod:`gyre_embed.reindex`) replays stored events into the new collection while live
indexing and deletions keep arriving; :class:`RebuildLedger` decides, per document, which of the two
writes wins, so the new collection ends up as the live one would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gyre_contracts import ChunksReady
from gyre_embed.batching import Vectors
from gyre_embed.index_targets import IndexTarget
from gyre_embed.indexing import build_points, embedding_text
from gyre_embed.replay import DocumentKey
from gyre_runtime.vectorstore import Bm25Encoder, SparseVector

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

    async def close(self) -> None:
        """Let both collections go (the service stops); a rebuild cut short starts again on redelivery."""
        if self.build is not None:
            await self.build.target.close(keep_model=self.build.target.shares_model_with(self.active))
        await self.active.close(keep_model=False)
