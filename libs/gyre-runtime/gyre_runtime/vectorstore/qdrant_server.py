"""VectorStore adapter for a Qdrant server or cluster through qdrant-client (its local mode stands in for tests)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from gyre_runtime.logging import get_logger
from gyre_runtime.vectorstore.base import (
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


def _match(key: str, value: Any) -> models.FieldCondition:
    if isinstance(value, list):
        return models.FieldCondition(key=key, match=models.MatchAny(any=value))
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _scope(
    tenant: str, document_id: str | None = None, metadata_filter: Mapping[str, Any] | None = None,
    *, before_version: int | None = None,
) -> models.Filter:
    must: list[models.Condition] = [_match(TENANT_FIELD, tenant)]
    if document_id is not None:
        must.append(_match(DOCUMENT_FIELD, document_id))
    if before_version is not None:
        must.append(models.FieldCondition(key=VERSION_FIELD, range=models.Range(lt=before_version)))
    must.extend(_match(key, value) for key, value in metadata_conditions(metadata_filter))
    return models.Filter(must=must)


def is_server_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _client(location: str, api_key: str | None) -> AsyncQdrantClient:
    if is_server_url(location):
        return AsyncQdrantClient(url=location, api_key=api_key)
    if location == ":memory:":
        return AsyncQdrantClient(location=":memory:")
    return AsyncQdrantClient(path=location)


class QdrantServerStore:
    """One Qdrant collection with a named dense vector and a named IDF-weighted sparse vector.

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
    async def open(
        cls, url_or_location: str, collection: str, dimension: int, *, api_key: str | None = None
    ) -> QdrantServerStore:
        """``url_or_location``: ``http(s)://...`` (server), ``:memory:`` or a folder (local mode, one process)."""
        check_collection_name(collection)
        client = _client(url_or_location, api_key)
        store = cls(client, collection, dimension, local=not is_server_url(url_or_location))
        try:
            await store._ensure_collection()
        except BaseException:
            await client.close()
            raise
        return store

    async def _ensure_collection(self) -> None:
        if not await self.client.collection_exists(self.collection):
            try:
                await self.client.create_collection(
                    self.collection,
                    vectors_config={
                        DENSE_VECTOR: models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={SPARSE_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                )
            except Exception:
                if not await self.client.collection_exists(self.collection):
                    raise  # not a replica that created it at the same moment
        info = await self.client.get_collection(self.collection)
        self._check_dense(info.config.params.vectors)
        if SPARSE_VECTOR not in (info.config.params.sparse_vectors or {}):
            # A collection from before hybrid retrieval: add the sparse vector in place. Its existing
            # points have none, so keyword search finds them only after they are re-indexed.
            await self.client.create_vector_name(
                self.collection,
                SPARSE_VECTOR,
                models.SparseVectorNameConfig(sparse=models.SparseVectorConfig(modifier=models.Modifier.IDF)),
            )
            log.warning("sparse_vector_added", collection=self.collection,
                        points_without_sparse=await self.count_all(),
                        hint="sparse and hybrid search miss these points until `gyre reindex` re-embeds them")
        if not self.local:  # local mode ignores payload indexes (and warns about them)
            schema = info.payload_schema
            if TENANT_FIELD not in schema:
                await self.client.create_payload_index(
                    self.collection, TENANT_FIELD,
                    models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
                )
            if DOCUMENT_FIELD not in schema:
                await self.client.create_payload_index(
                    self.collection, DOCUMENT_FIELD, models.PayloadSchemaType.KEYWORD
                )

    def _check_dense(self, vectors: Any) -> None:
        params = vectors.get(DENSE_VECTOR) if isinstance(vectors, dict) else None
        if (
            not isinstance(params, models.VectorParams)
            or params.size != self.dimension
            or params.distance != models.Distance.COSINE
        ):
            raise IncompatibleCollection(
                f"Qdrant collection {self.collection!r} does not hold {self.dimension}-dimension cosine vectors "
                f"named {DENSE_VECTOR!r} (it has {vectors!r}); build a new collection for this model with "
                "`gyre reindex`"
            )

    def _point(self, point: VectorPoint, tenant: str, document_id: str, version: int) -> models.PointStruct:
        if len(point.vector) != self.dimension:
            raise ValueError(f"point {point.id} has {len(point.vector)} dimensions, the collection {self.dimension}")
        vectors: dict[str, Any] = {DENSE_VECTOR: point.vector}
        if point.sparse is not None and point.sparse.indices:
            vectors[SPARSE_VECTOR] = models.SparseVector(
                indices=list(point.sparse.indices), values=list(point.sparse.values)
            )
        return models.PointStruct(
            id=point.id, vector=vectors, payload=stamped_payload(point, tenant, document_id, version)
        )

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        upserts = [self._point(p, tenant, document_id, version) for p in points]
        if upserts:
            await self.client.upsert(self.collection, points=upserts, wait=True)
        stale = _scope(tenant, document_id, before_version=version)
        await self.client.delete(self.collection, points_selector=models.FilterSelector(filter=stale), wait=True)

    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        scope = _scope(tenant, document_id, before_version=None if up_to_version is None else up_to_version + 1)
        await self.client.delete(self.collection, points_selector=models.FilterSelector(filter=scope), wait=True)

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
        scope = _scope(tenant, metadata_filter=metadata_filter)
        # IDF over the tenant's own chunks: another tenant's corpus must not shape this one's ranking.
        idf = models.SearchParams(idf=models.IdfCorpusParams(corpus=_scope(tenant)))
        sparse_query = (
            models.SparseVector(indices=list(sparse.indices), values=list(sparse.values))
            if sparse is not None and sparse.indices
            else None
        )
        limit = fetch_limit(top_k)
        if mode == "dense":
            response = await self.client.query_points(
                self.collection, query=dense, using=DENSE_VECTOR, query_filter=scope, limit=limit, with_payload=True
            )
        elif mode == "sparse":
            if sparse_query is None:
                return []  # only stopwords: no term to match
            response = await self.client.query_points(
                self.collection, query=sparse_query, using=SPARSE_VECTOR, query_filter=scope,
                search_params=idf, limit=limit, with_payload=True,
            )
        else:
            depth = prefetch_limit(top_k)
            prefetch = [models.Prefetch(query=dense, using=DENSE_VECTOR, filter=scope, limit=depth)]
            if sparse_query is not None:
                prefetch.append(
                    models.Prefetch(query=sparse_query, using=SPARSE_VECTOR, filter=scope, params=idf, limit=depth)
                )
            response = await self.client.query_points(
                self.collection, prefetch=prefetch, query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                query_filter=scope, limit=limit, with_payload=True,
            )
        hits = [SearchHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in response.points]
        return latest_versions_only(hits, top_k)

    async def count(self, tenant: str, document_id: str | None = None) -> int:
        result = await self.client.count(self.collection, count_filter=_scope(tenant, document_id), exact=True)
        return int(result.count)

    async def count_all(self) -> int:
        return int((await self.client.count(self.collection, exact=True)).count)

    async def close(self) -> None:
        await self.client.close()
