"""VectorStore adapter for Qdrant Edge: an in-process shard under the data dir, owned by one process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import qdrant_edge as q

from gyre_runtime.vectorstore.base import SearchHit, VectorPoint

DENSE = "dense"


def _match(key: str, value: Any) -> q.FieldCondition:
    return q.FieldCondition(key=key, match=q.MatchValue(value=value))


def _scope(tenant: str, document_id: str | None = None, metadata_filter: dict[str, Any] | None = None) -> q.Filter:
    must: list[Any] = [_match("tenant", tenant)]
    if document_id is not None:
        must.append(_match("document_id", document_id))
    for key, value in (metadata_filter or {}).items():
        must.append(_match(f"metadata.{key}", value))
    return q.Filter(must=must)


class QdrantEdgeStore:
    def __init__(self, path: Path, dimension: int) -> None:
        self.path = path
        self._lock = threading.Lock()
        if (path / "edge_config.json").exists():
            self.shard = q.EdgeShard.load(str(path))
        else:
            path.mkdir(parents=True, exist_ok=True)
            self.shard = q.EdgeShard.create(
                str(path), q.EdgeConfig(vectors={DENSE: q.EdgeVectorParams(size=dimension, distance=q.Distance.Cosine)})
            )
            self.shard.update(q.UpdateOperation.create_field_index("tenant", q.KeywordIndexParams(is_tenant=True)))
            self.shard.update(q.UpdateOperation.create_field_index("document_id", q.KeywordIndexParams()))

    def _replace(self, tenant: str, document_id: str, version: int, points: list[VectorPoint]) -> None:
        with self._lock:
            if points:
                self.shard.update(
                    q.UpdateOperation.upsert_points(
                        [q.Point(p.id, {DENSE: p.vector}, p.payload) for p in points]
                    )
                )
            stale = _scope(tenant, document_id)
            stale = q.Filter(must=stale.must, must_not=[_match("version", version)])
            self.shard.update(q.UpdateOperation.delete_points_by_filter(stale))
            self.shard.flush()

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        await asyncio.to_thread(self._replace, tenant, document_id, version, points)

    def _delete(self, tenant: str, document_id: str) -> None:
        with self._lock:
            self.shard.update(q.UpdateOperation.delete_points_by_filter(_scope(tenant, document_id)))
            self.shard.flush()

    async def delete_document(self, tenant: str, document_id: str) -> None:
        await asyncio.to_thread(self._delete, tenant, document_id)

    async def search(
        self, tenant: str, vector: list[float], top_k: int, metadata_filter: dict[str, Any] | None = None
    ) -> list[SearchHit]:
        request = q.QueryRequest(
            limit=top_k,
            query=q.Query.Nearest(vector, using=DENSE),
            filter=_scope(tenant, metadata_filter=metadata_filter),
            with_payload=True,
        )
        with self._lock:
            found = self.shard.query(request)
        return [SearchHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in found]

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        with self._lock:
            return int(self.shard.count(q.CountRequest(filter=_scope(tenant, document_id), exact=True)))

    async def close(self) -> None:
        with self._lock:
            self.shard.flush()
            self.shard.close()
