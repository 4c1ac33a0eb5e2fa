"""VectorStore adapter for Qdrant Edge: in-process shards (one folder per collection), owned by one process."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, cast

import qdrant_edge as q

from gyre_runtime.logging import get_logger
from gyre_runtime.vectorstore import base
from gyre_runtime.vectorstore.base import SearchHit, SearchQuery, VectorPoint
from gyre_runtime.vectorstore.scope import Condition, qdrant_filter, scope

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

log = get_logger()

CONFIG_FILE = "edge_config.json"
# Every update is in the shard's write-ahead log at once, which a restart replays (a SIGKILL loses
# nothing); a flush writes segments and trims that log. It costs ~10-45 ms, so it runs at most this
# often rather than after every document.
FLUSH_INTERVAL_S = 2.0


def _filter(conditions: list[Condition]) -> q.Filter:
    return cast(q.Filter, qdrant_filter(conditions, q, q.RangeFloat))


def _config(dimension: int) -> q.EdgeConfig:
    return q.EdgeConfig(
        vectors={base.DENSE_VECTOR: q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine)},
        sparse_vectors={base.SPARSE_VECTOR: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
    )


def _has_sparse_vector(shard: q.EdgeShard) -> bool:
    probe = q.QueryRequest(limit=1, query=q.Query.Nearest(q.SparseVector([0], [1.0]), using=base.SPARSE_VECTOR))
    try:
        shard.query(probe)
    except Exception:  # the binding raises a bare Exception: "Not existing vector name error: bm25"
        return False
    return True


def _open_shard(path: Path, dimension: int) -> q.EdgeShard:
    """Create the shard, or load it checked against the config; a dense-only shard gains the sparse vector."""
    config = _config(dimension)
    if not (path / CONFIG_FILE).exists():
        path.mkdir(parents=True, exist_ok=True)
        return q.EdgeShard.create(str(path), config)
    try:
        return q.EdgeShard.load(str(path), config)
    except Exception as exc:
        refused = exc
    shard = q.EdgeShard.load(str(path))  # raises as it is when the shard cannot be opened at all
    try:
        if _has_sparse_vector(shard):
            raise base.IncompatibleCollection(
                f"the vector collection at {path} does not fit a {dimension}-dimension model ({refused}); "
                "build a new collection for this model with `gyre reindex`"
            )
        # A shard from before hybrid retrieval: add the sparse vector in place. Its existing points
        # have none, so keyword search finds them only after they are re-indexed.
        shard.update(q.UpdateOperation.create_sparse_vector(base.SPARSE_VECTOR, modifier=q.Modifier.Idf))
        shard.flush()
        without = int(shard.count(q.CountRequest(exact=True)))
    finally:
        shard.close()
    log.warning("sparse_vector_added", path=str(path), points_without_sparse=without,
                hint="sparse and hybrid search miss these points until `gyre reindex` re-embeds them")
    try:
        return q.EdgeShard.load(str(path), config)
    except Exception as exc:
        raise base.IncompatibleCollection(
            f"the vector collection at {path} does not fit a {dimension}-dimension model ({exc}); "
            "build a new collection for this model with `gyre reindex`"
        ) from exc


def _adopt_single_shard_layout(folder: Path) -> None:
    """Before collections, the one live shard lived in ``folder`` itself: move it to the default collection.

    Files move into a staging folder first and the config file last, so a crash part-way is finished
    on the next start rather than leaving a shard that neither layout recognises.
    """
    collection = base.DEFAULT_COLLECTION
    staging = folder / f".{collection}.adopting"
    if not staging.exists():  # else a move was cut short: finish it without opening the half-moved shard
        if not (folder / CONFIG_FILE).exists():
            return
        q.EdgeShard.load(str(folder)).close()  # fails, before anything moves, while a process holds it
        staging.mkdir()
    target = folder / collection
    if target.exists():
        raise base.IncompatibleCollection(
            f"{folder} holds a shard of the old single-collection layout and a collection {collection!r}; "
            f"move one of them away (the old shard's files: {CONFIG_FILE}, wal/, segments/)"
        )
    entries = [e for e in folder.iterdir() if not e.name.endswith(".adopting") and not (e / CONFIG_FILE).exists()]
    for entry in sorted(entries, key=lambda e: e.name == CONFIG_FILE):
        entry.rename(staging / entry.name)
    staging.rename(target)
    log.info("shard_layout_adopted", path=str(target))


class QdrantEdgeStore(base.VectorStore):
    """One Qdrant Edge shard; every call holds one lock, so a search sees a replacement whole or not at all."""

    def __init__(self, path: Path, dimension: int) -> None:
        """Use :meth:`open` (or :meth:`open_collection` outside an event loop)."""
        self.path = path
        self.collection = path.name
        self.dimension = dimension
        self._lock = threading.Lock()
        self.shard = _open_shard(path, dimension)
        self._flushed_at = time.monotonic()
        schema = self.shard.info().payload_schema
        if base.TENANT_FIELD not in schema:
            self.shard.update(
                q.UpdateOperation.create_field_index(base.TENANT_FIELD, q.KeywordIndexParams(is_tenant=True))
            )
        if base.DOCUMENT_FIELD not in schema:
            self.shard.update(q.UpdateOperation.create_field_index(base.DOCUMENT_FIELD, q.KeywordIndexParams()))

    @classmethod
    def open_collection(cls, folder: Path, collection: str, dimension: int) -> Self:
        """The collection's shard in ``folder/<collection>``, created when missing."""
        base.check_collection_name(collection)
        _adopt_single_shard_layout(folder)
        return cls(folder / collection, dimension)

    @classmethod
    async def open(cls, settings: Settings, collection: str, dimension: int) -> Self:
        return await asyncio.to_thread(cls.open_collection, settings.qdrant_shard_path, collection, dimension)

    @classmethod
    async def drop_collection(cls, settings: Settings, collection: str) -> None:
        base.check_collection_name(collection)  # the name becomes a folder to delete: never `..`
        await asyncio.to_thread(shutil.rmtree, settings.qdrant_shard_path / collection, ignore_errors=True)
        log.info("collection_dropped", collection=collection)

    async def drop(self) -> None:
        await self.close()
        await asyncio.to_thread(shutil.rmtree, self.path, ignore_errors=True)
        log.info("collection_dropped", collection=self.collection)

    def _replace(self, tenant: str, document_id: str, version: int, points: list[VectorPoint]) -> None:
        base.check_dimensions(points, self.dimension)
        upserts = [
            q.Point(p.id, self._vectors(p), base.stamped_payload(p, tenant, document_id, version)) for p in points
        ]
        stale = _filter(scope(tenant, document_id, before_version=version))
        with self._lock:
            if upserts:
                self.shard.update(q.UpdateOperation.upsert_points(upserts))
            self.shard.update(q.UpdateOperation.delete_points_by_filter(stale))
            self._flush_now_and_then()

    def _flush_now_and_then(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S:
            self.shard.flush()
            self._flushed_at = time.monotonic()

    @staticmethod
    def _vectors(point: VectorPoint) -> dict[str, Any]:
        vectors: dict[str, Any] = {base.DENSE_VECTOR: point.vector}
        if point.sparse is not None and point.sparse.indices:
            vectors[base.SPARSE_VECTOR] = q.SparseVector(list(point.sparse.indices), list(point.sparse.values))
        return vectors

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        await asyncio.to_thread(self._replace, tenant, document_id, version, points)

    def _delete(self, where: q.Filter) -> None:
        with self._lock:
            self.shard.update(q.UpdateOperation.delete_points_by_filter(where))
            self._flush_now_and_then()

    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        before = None if up_to_version is None else up_to_version + 1
        await asyncio.to_thread(self._delete, _filter(scope(tenant, document_id, before_version=before)))

    @staticmethod
    def _request(query: SearchQuery) -> q.QueryRequest:
        where = _filter(scope(query.tenant, metadata_filter=query.metadata_filter))
        # IDF over the tenant's own chunks: another tenant's corpus must not shape this one's ranking.
        idf = q.SearchParams(idf=q.IdfParams(corpus=_filter(scope(query.tenant))))
        dense = q.Query.Nearest(query.dense, using=base.DENSE_VECTOR) if query.dense is not None else None
        sparse = None
        if query.sparse is not None:
            terms = q.SparseVector(list(query.sparse.indices), list(query.sparse.values))
            sparse = q.Query.Nearest(terms, using=base.SPARSE_VECTOR)
        if query.mode == "dense":
            return q.QueryRequest(limit=query.limit, query=dense, filter=where, with_payload=True)
        if query.mode == "sparse":
            return q.QueryRequest(limit=query.limit, query=sparse, filter=where, params=idf, with_payload=True)
        prefetches = [q.Prefetch(limit=query.depth, query=dense, filter=where)]
        if sparse is not None:
            prefetches.append(q.Prefetch(limit=query.depth, query=sparse, filter=where, params=idf))
        fusion = q.Fusion.Rrf(k=base.RRF_K)
        # The stubs type `query` as `Fusion`, of which `Fusion.Rrf` is a nested class, not a subclass.
        return q.QueryRequest(
            limit=query.limit, prefetches=prefetches, query=fusion, filter=where, with_payload=True  # type: ignore[arg-type]
        )

    def _search(self, request: q.QueryRequest) -> list[SearchHit]:
        with self._lock:
            return base.scored_hits(self.shard.query(request))

    async def _query(self, query: SearchQuery) -> list[SearchHit]:
        return await asyncio.to_thread(self._search, self._request(query))

    def _count(self, where: q.Filter | None) -> int:
        with self._lock:
            return int(self.shard.count(q.CountRequest(filter=where, exact=True)))

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        return await asyncio.to_thread(self._count, _filter(scope(tenant, document_id)))

    async def count_all(self) -> int:
        return await asyncio.to_thread(self._count, None)

    def _close(self) -> None:
        with self._lock:
            self.shard.flush()
            self.shard.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)
