"""VectorStore adapter for a Qdrant server or cluster through qdrant-client (its local mode stands in for tests)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, cast

from qdrant_client import AsyncQdrantClient, models

from gyre_runtime.logging import get_logger
from gyre_runtime.vectorstore import base
from gyre_runtime.vectorstore.base import SearchHit, SearchQuery, VectorPoint
from gyre_runtime.vectorstore.scope import Condition, qdrant_filter, scope

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

log = get_logger()


def _filter(conditions: list[Condition]) -> models.Filter:
    return cast(models.Filter, qdrant_filter(conditions, models, models.Range))


def is_server_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _client(location: str) -> AsyncQdrantClient:
    if is_server_url(location):
        return AsyncQdrantClient(url=location)
    if location == ":memory:":
        return AsyncQdrantClient(location=":memory:")
    return AsyncQdrantClient(path=location)


class QdrantServerStore(base.VectorStore):
    """One Qdrant collection with a named dense vector and a named IDF-weighted sparse vector.

    ``qdrant_url`` names a server (``http(s)://...``), or qdrant-client's local mode: ``:memory:``,
    or a folder that one process at a time may hold.

    A replacement is two requests (upsert, then delete by filter), so a concurrent search may meet
    both versions stored: it then drops the older version's hits.
    """

    def __init__(self, client: AsyncQdrantClient, collection: str, dimension: int, *, local: bool) -> None:
        """Use :meth:`open`, which also creates or checks the collection."""
        self.client = client
        self.collection = collection
        self.dimension = dimension
        self.local = local

    @classmethod
    async def open(cls, settings: Settings, collection: str, dimension: int) -> Self:
        base.check_collection_name(collection)
        client = _client(settings.qdrant_url)
        store = cls(client, collection, dimension, local=not is_server_url(settings.qdrant_url))
        try:
            await store._ensure_collection()
        except BaseException:
            await client.close()
            raise
        return store

    @classmethod
    async def drop_collection(cls, settings: Settings, collection: str) -> None:
        if not is_server_url(settings.qdrant_url):
            # Local mode: one client per folder, and the serving collection's store holds it.
            log.warning("leftover_collection_kept", collection=collection, location=settings.qdrant_url)
            return
        client = _client(settings.qdrant_url)
        try:
            await client.delete_collection(collection)
        finally:
            await client.close()
        log.info("collection_dropped", collection=collection)

    async def drop(self) -> None:
        try:
            await self.client.delete_collection(self.collection)
        finally:
            await self.close()
        log.info("collection_dropped", collection=self.collection)

    async def _ensure_collection(self) -> None:
        if not await self.client.collection_exists(self.collection):
            try:
                await self.client.create_collection(
                    self.collection,
                    vectors_config={
                        base.DENSE_VECTOR: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={base.SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except Exception:
                if not await self.client.collection_exists(self.collection):
                    raise  # not a replica that created it at the same moment
        info = await self.client.get_collection(self.collection)
        self._check_dense(info.config.params.vectors)
        if base.SPARSE_VECTOR not in (info.config.params.sparse_vectors or {}):
            # A collection from before hybrid retrieval: add the sparse vector in place. Its existing
            # points have none, so keyword search finds them only after they are re-indexed.
            await self.client.create_vector_name(
                self.collection,
                base.SPARSE_VECTOR,
                models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF)),
            )
            log.warning("sparse_vector_added", collection=self.collection,
                        points_without_sparse=await self.count_all(),
                        hint="sparse and hybrid search miss these points until `gyre reindex` re-embeds them")
        if not self.local:  # local mode ignores payload indexes (and warns about them)
            schema = info.payload_schema
            if base.TENANT_FIELD not in schema:
                await self.client.create_payload_index(
                    self.collection, base.TENANT_FIELD,
                    models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
                )
            if base.DOCUMENT_FIELD not in schema:
                await self.client.create_payload_index(
                    self.collection, base.DOCUMENT_FIELD, models.PayloadSchemaType.KEYWORD
                )

    def _check_dense(self, vectors: Any) -> None:
        params = vectors.get(base.DENSE_VECTOR) if isinstance(vectors, dict) else None
        if (
            not isinstance(params, models.VectorParams)
            or params.size != self.dimension
            or params.distance != models.Distance.COSINE
        ):
            raise base.IncompatibleCollection(
                f"Qdrant collection {self.collection!r} does not hold {self.dimension}-dimension cosine vectors "
                f"named {base.DENSE_VECTOR!r} (it has {vectors!r}); build a new collection for this model with "
                "`gyre reindex`"
            )

    @staticmethod
    def _point(point: VectorPoint, tenant: str, document_id: str, version: int) -> models.PointStruct:
        vectors: dict[str, Any] = {base.DENSE_VECTOR: point.vector}
        if point.sparse is not None and point.sparse.indices:
            vectors[base.SPARSE_VECTOR] = models.SparseVector(
                indices=list(point.sparse.indices), values=list(point.sparse.values)
            )
        return models.PointStruct(
            id=point.id, vector=vectors, payload=base.stamped_payload(point, tenant, document_id, version)
        )

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        base.check_dimensions(points, self.dimension)
        upserts = [self._point(p, tenant, document_id, version) for p in points]
        if upserts:
            await self.client.upsert(self.collection, points=upserts, wait=True)
        await self._delete(_filter(scope(tenant, document_id, before_version=version)))

    async def _delete(self, where: models.Filter) -> None:
        await self.client.delete(self.collection, points_selector=models.FilterSelector(filter=where), wait=True)

    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        before = None if up_to_version is None else up_to_version + 1
        await self._delete(_filter(scope(tenant, document_id, before_version=before)))

    async def _query(self, query: SearchQuery) -> list[SearchHit]:
        where = _filter(scope(query.tenant, metadata_filter=query.metadata_filter))
        # IDF over the tenant's own chunks: another tenant's corpus must not shape this one's ranking.
        idf = models.SearchParams(idf=models.IdfCorpusParams(corpus=_filter(scope(query.tenant))))
        sparse = (
            models.SparseVector(indices=list(query.sparse.indices), values=list(query.sparse.values))
            if query.sparse is not None
            else None
        )
        if query.mode == "dense":
            response = await self.client.query_points(
                self.collection, query=query.dense, using=base.DENSE_VECTOR, query_filter=where, limit=query.limit,
                with_payload=True,
            )
        elif query.mode == "sparse":
            response = await self.client.query_points(
                self.collection, query=sparse, using=base.SPARSE_VECTOR, query_filter=where,
                search_params=idf, limit=query.limit, with_payload=True,
            )
        else:
            prefetch = [models.Prefetch(query=query.dense, using=base.DENSE_VECTOR, filter=where, limit=query.depth)]
            if sparse is not None:
                prefetch.append(models.Prefetch(
                    query=sparse, using=base.SPARSE_VECTOR, filter=where, params=idf, limit=query.depth
                ))
            response = await self.client.query_points(
                self.collection, prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=base.RRF_K)),
                query_filter=where, limit=query.limit, with_payload=True,
            )
        return base.scored_hits(response.points)

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        result = await self.client.count(self.collection, count_filter=_filter(scope(tenant, document_id)), exact=True)
        return int(result.count)

    async def count_all(self) -> int:
        return int((await self.client.count(self.collection, exact=True)).count)

    async def close(self) -> None:
        await self.client.close()
