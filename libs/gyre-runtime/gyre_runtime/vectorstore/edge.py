"""VectorStore adapter for Qdrant Edge: in-process shards (one folder per collection), owned by one process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import qdrant_edge as q

from gyre_runtime.logging import get_logger
from gyre_runtime.vectorstore.base import (
    DEFAULT_COLLECTION,
    DENSE_VECTOR,
    DOCUMENT_FIELD,
    RRF_K,
    SPARSE_VECTOR,
    TENANT_FIELD,
    VERSION_FIELD,
    IncompatibleCollection,
    SearchHit,
    SearchMode,
    SparseVector,
    VectorPoint,
    check_collection_name,
    check_search,
    fetch_limit,
    latest_versions_only,
    metadata_conditions,
    prefetch_limit,
    stamped_payload,
)

log = get_logger()

CONFIG_FILE = "edge_config.json"
# Every update is in the shard's write-ahead log at once, which a restart replays (a SIGKILL loses
# nothing); a flush writes segments and trims that log. It costs ~10-45 ms, so it runs at most this
# often rather than after every document.
FLUSH_INTERVAL_S = 2.0

def _match(key: str, value: Any) -> q.FieldCondition:
    if isinstance(value, list):
        return q.FieldCondition(key=key, match=q.MatchAny(any=value))
    return q.FieldCondition(key=key, match=q.MatchValue(value=value))


def _scope(
    tenant: str, document_id: str | None = None, metadata_filter: Mapping[str, Any] | None = None,
    *, before_version: int | None = None,
) -> q.Filter:
    must: list[Any] = [_match(TENANT_FIELD, tenant)]
    if document_id is not None:
        must.append(_match(DOCUMENT_FIELD, document_id))
    if before_version is not None:
        must.append(q.FieldCondition(key=VERSION_FIELD, range=q.RangeFloat(lt=before_version)))
    must.extend(_match(key, value) for key, value in metadata_conditions(metadata_filter))
    return q.Filter(must=must)


def _config(dimension: int) -> q.EdgeConfig:
    return q.EdgeConfig(
        vectors={DENSE_VECTOR: q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine)},
        sparse_vectors={SPARSE_VECTOR: q.EdgeSparseVectorParams(modifier=q.Modifier.Idf)},
    )


def _has_sparse_vector(shard: q.EdgeShard) -> bool:
    probe = q.QueryRequest(limit=1, query=q.Query.Nearest(q.SparseVector([0], [1.0]), using=SPARSE_VECTOR))
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
            raise IncompatibleCollection(
                f"the vector collection at {path} does not fit a {dimension}-dimension model ({refused}); "
                "build a new collection for this model with `gyre reindex`"
            )
        # A shard from before hybrid retrieval: add the sparse vector in place. Its existing points
        # have none, so keyword search finds them only after they are re-indexed.
        shard.update(q.UpdateOperation.create_sparse_vector(SPARSE_VECTOR, modifier=q.Modifier.Idf))
        shard.flush()
        without = int(shard.count(q.CountRequest(exact=True)))
    finally:
        shard.close()
    log.warning("sparse_vector_added", path=str(path), points_without_sparse=without,
                hint="sparse and hybrid search miss these points until `gyre reindex` re-embeds them")
    try:
        return q.EdgeShard.load(str(path), config)
    except Exception as exc:
        raise IncompatibleCollection(
            f"the vector collection at {path} does not fit a {dimension}-dimension model ({exc}); "
            "build a new collection for this model with `gyre reindex`"
        ) from exc


def _adopt_single_shard_layout(base: Path) -> None:
    """Before collections, the one live shard lived in ``base`` itself: move it to the default collection.

    Files move into a staging folder first and the config file last, so a crash part-way is finished
    on the next start rather than leaving a shard that neither layout recognises.
    """
    collection = DEFAULT_COLLECTION
    staging = base / f".{collection}.adopting"
    if not staging.exists():  # else a move was cut short: finish it without opening the half-moved shard
        if not (base / CONFIG_FILE).exists():
            return
        q.EdgeShard.load(str(base)).close()  # fails, before anything moves, while a process holds it
        staging.mkdir()
    target = base / collection
    if target.exists():
        raise IncompatibleCollection(
            f"{base} holds a shard of the old single-collection layout and a collection {collection!r}; "
            f"move one of them away (the old shard's files: {CONFIG_FILE}, wal/, segments/)"
        )
    entries = [e for e in base.iterdir() if not e.name.endswith(".adopting") and not (e / CONFIG_FILE).exists()]
    for entry in sorted(entries, key=lambda e: e.name == CONFIG_FILE):
        entry.rename(staging / entry.name)
    staging.rename(target)
    log.info("shard_layout_adopted", path=str(target))


class QdrantEdgeStore:
    """One Qdrant Edge shard; every call holds one lock, so a search sees a replacement whole or not at all."""

    def __init__(self, path: Path, dimension: int) -> None:
        self.path = path
        self.dimension = dimension
        self._lock = threading.Lock()
        self.shard = _open_shard(path, dimension)
        self._flushed_at = time.monotonic()
        schema = self.shard.info().payload_schema
        if TENANT_FIELD not in schema:
            self.shard.update(q.UpdateOperation.create_field_index(TENANT_FIELD, q.KeywordIndexParams(is_tenant=True)))
        if DOCUMENT_FIELD not in schema:
            self.shard.update(q.UpdateOperation.create_field_index(DOCUMENT_FIELD, q.KeywordIndexParams()))

    @classmethod
    def open_collection(cls, base: Path, collection: str, dimension: int) -> QdrantEdgeStore:
        """The collection's shard in ``base/<collection>``, created when missing."""
        check_collection_name(collection)
        _adopt_single_shard_layout(base)
        return cls(base / collection, dimension)

    def _replace(self, tenant: str, document_id: str, version: int, points: list[VectorPoint]) -> None:
        upserts = [
            q.Point(p.id, self._vectors(p), stamped_payload(p, tenant, document_id, version)) for p in points
        ]
        stale = _scope(tenant, document_id, before_version=version)
        with self._lock:
            if upserts:
                self.shard.update(q.UpdateOperation.upsert_points(upserts))
            self.shard.update(q.UpdateOperation.delete_points_by_filter(stale))
            self._flush_now_and_then()

    def _flush_now_and_then(self) -> None:
        if time.monotonic() - self._flushed_at >= FLUSH_INTERVAL_S:
            self.shard.flush()
            self._flushed_at = time.monotonic()

    def _vectors(self, point: VectorPoint) -> dict[str, Any]:
        if len(point.vector) != self.dimension:
            raise ValueError(f"point {point.id} has {len(point.vector)} dimensions, the collection {self.dimension}")
        vectors: dict[str, Any] = {DENSE_VECTOR: point.vector}
        if point.sparse is not None and point.sparse.indices:
            vectors[SPARSE_VECTOR] = q.SparseVector(list(point.sparse.indices), list(point.sparse.values))
        return vectors

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        await asyncio.to_thread(self._replace, tenant, document_id, version, points)

    def _delete(self, tenant: str, document_id: str, up_to_version: int | None) -> None:
        scope = _scope(tenant, document_id, before_version=None if up_to_version is None else up_to_version + 1)
        with self._lock:
            self.shard.update(q.UpdateOperation.delete_points_by_filter(scope))
            self._flush_now_and_then()

    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        await asyncio.to_thread(self._delete, tenant, document_id, up_to_version)

    def _request(
        self,
        tenant: str,
        dense: list[float] | None,
        sparse: SparseVector | None,
        top_k: int,
        mode: SearchMode,
        metadata_filter: Mapping[str, Any] | None,
    ) -> q.QueryRequest | None:
        scope = _scope(tenant, metadata_filter=metadata_filter)
        # IDF over the tenant's own chunks: another tenant's corpus must not shape this one's ranking.
        idf = q.SearchParams(idf=q.IdfParams(corpus=_scope(tenant)))
        limit = fetch_limit(top_k)
        has_terms = sparse is not None and bool(sparse.indices)
        dense_query = q.Query.Nearest(dense, using=DENSE_VECTOR) if dense is not None else None
        sparse_query = (
            q.Query.Nearest(q.SparseVector(list(sparse.indices), list(sparse.values)), using=SPARSE_VECTOR)
            if sparse is not None and has_terms
            else None
        )
        if mode == "dense":
            return q.QueryRequest(limit=limit, query=dense_query, filter=scope, with_payload=True)
        if mode == "sparse":
            if sparse_query is None:
                return None  # only stopwords: no term to match
            return q.QueryRequest(limit=limit, query=sparse_query, filter=scope, params=idf, with_payload=True)
        depth = prefetch_limit(top_k)
        prefetches = [q.Prefetch(limit=depth, query=dense_query, filter=scope)]
        if sparse_query is not None:
            prefetches.append(q.Prefetch(limit=depth, query=sparse_query, filter=scope, params=idf))
        fusion = q.Fusion.Rrf(k=RRF_K)
        # The stubs type `query` as `Fusion`, of which `Fusion.Rrf` is a nested class, not a subclass.
        return q.QueryRequest(limit=limit, prefetches=prefetches, query=fusion, filter=scope, with_payload=True)  # type: ignore[arg-type]

    def _search(self, request: q.QueryRequest, top_k: int) -> list[SearchHit]:
        with self._lock:
            found = self.shard.query(request)
        hits = [SearchHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in found]
        return latest_versions_only(hits, top_k)

    async def search(
        self,
        tenant: str,
        *,
        dense: list[float] | None,
        sparse: SparseVector | None,
        top_k: int,
        mode: SearchMode,
        metadata_filter: Mapping[str, Any] | None = None,
    ) -> list[SearchHit]:
        check_search(dense=dense, sparse=sparse, top_k=top_k, mode=mode, dimension=self.dimension)
        request = self._request(tenant, dense, sparse, top_k, mode, metadata_filter)
        if request is None:
            return []
        return await asyncio.to_thread(self._search, request, top_k)

    def _count(self, scope: q.Filter | None) -> int:
        with self._lock:
            return int(self.shard.count(q.CountRequest(filter=scope, exact=True)))

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        return await asyncio.to_thread(self._count, _scope(tenant, document_id))

    async def count_all(self) -> int:
        return await asyncio.to_thread(self._count, None)

    def _close(self) -> None:
        with self._lock:
            self.shard.flush()
            self.shard.close()

    async def close(self) -> None:
        await asyncio.to_thread(self._close)
