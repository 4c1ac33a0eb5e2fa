"""The VectorStore port: what the embed service needs from any vector database, and the rules every adapter keeps."""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Self

import msgspec

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

# Fixed namespace: point ids must be the same in every process and every run.
POINT_NAMESPACE = uuid.UUID("6f1d7c2e-3b8a-5e4f-9a0b-1c2d3e4f5a6b")

# Names of the two vectors each point carries, the same in every adapter.
DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"
# Reciprocal rank fusion: score = sum over result lists of 1 / (RRF_K + rank), rank counted from 0.
RRF_K = 60
MIN_PREFETCH = 50
# Payload fields the store itself owns and filters on; metadata filters address `metadata.<key>`.
TENANT_FIELD = "tenant"
DOCUMENT_FIELD = "document_id"
VERSION_FIELD = "version"
METADATA_FIELD = "metadata"
DEFAULT_COLLECTION = "gyre_chunks"  # the same default as the `qdrant_collection` setting

_COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")

SearchMode = Literal["dense", "sparse", "hybrid"]


def point_id(tenant: str, document_id: str, version: int, chunk_index: int) -> str:
    """Deterministic point id, so a redelivered message overwrites instead of duplicating."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}\x1f{document_id}\x1f{version}\x1f{chunk_index}"))


class SparseVector(msgspec.Struct, frozen=True):
    """Non-zero dimensions (term ids, unique, ascending) and their weights."""

    indices: list[int]
    values: list[float]


class VectorPoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    vector: list[float]
    payload: dict[str, Any]
    # BM25 term weights of the chunk's text; a point without one is found by dense search only.
    sparse: SparseVector | None = None


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    """``score``: cosine similarity (dense), BM25 (sparse) or reciprocal-rank-fusion score (hybrid)."""

    id: str
    score: float
    payload: dict[str, Any]


class VectorStoreError(Exception):
    """A vector store refused an operation; the message says what to do about it."""


class IncompatibleCollection(VectorStoreError):
    """The stored collection was built differently (other dimension, other vectors) from what is asked."""


class InvalidSearch(VectorStoreError, ValueError):
    """The search arguments cannot be answered (missing vector for the mode, wrong dimension, bad filter)."""


@dataclass(frozen=True)
class SearchQuery:
    """A search that passed the checks, as an adapter runs it."""

    tenant: str
    dense: list[float] | None
    sparse: SparseVector | None  # None also when the query had no term left (only stopwords)
    mode: SearchMode
    metadata_filter: Mapping[str, Any] | None
    limit: int  # hits asked of the database: a margin over top_k for the stale versions that get dropped
    depth: int  # how deep each ranking goes before hybrid fusion


class VectorStore(ABC):
    """One collection. Every read and write is scoped to one tenant: there is no way to search across tenants.

    Each chunk is one point with a dense vector (``"dense"``, cosine) and a BM25 sparse vector
    (``"bm25"``, IDF applied by the store at query time over the tenant's own points). The store
    sets the payload fields ``tenant``, ``document_id`` and ``version`` itself.

    Life cycle: :meth:`open` creates the collection or checks the stored one; :meth:`close` lets it
    go; :meth:`drop` deletes it with every point; :meth:`drop_collection` deletes one no store has
    open. Which adapter runs is the settings' choice (:func:`gyre_runtime.vectorstore.open_vector_store`).
    """

    collection: str
    dimension: int

    @classmethod
    @abstractmethod
    async def open(cls, settings: Settings, collection: str, dimension: int) -> Self:
        """The collection's store, created when missing. Raises :class:`IncompatibleCollection` when the
        stored one holds vectors of another dimension."""

    @classmethod
    @abstractmethod
    async def drop_collection(cls, settings: Settings, collection: str) -> None:
        """Delete a collection that no store has open (one an interrupted rebuild left), if it exists."""

    @abstractmethod
    async def drop(self) -> None:
        """Delete this collection with every point in it, and close the store."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        """Upsert the new version's points, then drop every older version's (never a newer one's).

        Search never returns a document's versions side by side (hits of an older version are
        dropped while both exist), nor neither (the old points go only after the new ones are in).
        An older version written after a newer one (workers finishing out of order) leaves the newer
        one in place.
        """

    @abstractmethod
    async def delete_document(self, tenant: str, document_id: str, *, up_to_version: int | None = None) -> None:
        """Drop the document's points: every version, or only versions up to ``up_to_version``."""

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
        """Best ``top_k`` chunks of ``tenant`` whose metadata matches every key of ``metadata_filter``.

        ``dense`` mode needs ``dense``, ``sparse`` needs ``sparse``, ``hybrid`` needs both and fuses
        the two rankings (each ``max(50, 4 * top_k)`` deep) by reciprocal rank fusion, k = 60.
        A filter value that is a list matches any of its items. Raises :class:`InvalidSearch`.
        """
        check_search(dense=dense, sparse=sparse, top_k=top_k, mode=mode, dimension=self.dimension)
        terms = sparse if sparse is not None and sparse.indices else None
        if mode == "sparse" and terms is None:
            return []  # only stopwords: no term to match
        query = SearchQuery(
            tenant=tenant, dense=dense, sparse=terms, mode=mode, metadata_filter=metadata_filter,
            limit=2 * top_k, depth=max(MIN_PREFETCH, 4 * top_k),
        )
        return latest_versions_only(await self._query(query), top_k)

    @abstractmethod
    async def _query(self, query: SearchQuery) -> list[SearchHit]:
        """The database's best ``query.limit`` hits, stale versions and all."""

    @abstractmethod
    async def count(self, tenant: str, document_id: str | None = None) -> int: ...

    @abstractmethod
    async def count_all(self) -> int:
        """Points of every tenant (for checks and re-indexing, never for answering a tenant)."""


def check_collection_name(collection: str) -> None:
    """Collection names double as folder names (Qdrant Edge) and collection names (Qdrant server)."""
    if not _COLLECTION_NAME.fullmatch(collection):
        raise ValueError(
            "collection names are 1-63 letters, digits, '_' or '-', starting with a letter or digit; "
            f"got {collection!r}"
        )


def check_search(
    *, dense: Sequence[float] | None, sparse: SparseVector | None, top_k: int, mode: str, dimension: int
) -> None:
    if top_k < 1:
        raise InvalidSearch(f"top_k must be at least 1, got {top_k}")
    if mode not in ("dense", "sparse", "hybrid"):
        raise InvalidSearch(f"mode must be dense, sparse or hybrid, got {mode!r}")
    if mode in ("dense", "hybrid"):
        if dense is None:
            raise InvalidSearch(f"{mode} search needs a dense query vector")
        if len(dense) != dimension:
            raise InvalidSearch(f"the query vector has {len(dense)} dimensions, the collection {dimension}")
    if mode in ("sparse", "hybrid") and sparse is None:
        raise InvalidSearch(f"{mode} search needs a sparse query vector")
    if sparse is not None and len(sparse.indices) != len(sparse.values):
        raise InvalidSearch("a sparse vector needs as many values as indices")


def metadata_key_path(key: str) -> str:
    """A metadata key as one step of a Qdrant JSON path: as it is when it is a plain name, else quoted.

    Unquoted, a space, ``:``, ``/``, ``$`` ... make the path invalid (the store refused the search);
    a key holding ``"`` or a control character cannot be quoted and is refused.
    """
    if _PLAIN_KEY.fullmatch(key):
        return key
    if '"' in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise InvalidSearch(
            f"filter key {key!r}: a key with a double quote or a control character cannot be filtered on"
        )
    return f'"{key}"'


_PLAIN_KEY = re.compile(r"[^\W]+(?:-[^\W]+)*")


def check_dimensions(points: Sequence[VectorPoint], dimension: int) -> None:
    for point in points:
        if len(point.vector) != dimension:
            raise ValueError(f"point {point.id} has {len(point.vector)} dimensions, the collection {dimension}")


def scored_hits(points: Iterable[Any]) -> list[SearchHit]:
    """Scored points of either Qdrant library (``id``, ``score``, ``payload``) as hits."""
    return [SearchHit(id=str(p.id), score=float(p.score), payload=dict(p.payload or {})) for p in points]


def stamped_payload(point: VectorPoint, tenant: str, document_id: str, version: int) -> dict[str, Any]:
    """The point's payload with the fields the store filters on set from the call, not trusted from it."""
    return {
        **point.payload,
        TENANT_FIELD: tenant,
        DOCUMENT_FIELD: document_id,
        VERSION_FIELD: version,
    }


def latest_versions_only(hits: Sequence[SearchHit], top_k: int) -> list[SearchHit]:
    """Drop hits of a document's older version while a replacement briefly leaves both stored."""
    newest: dict[str, int] = {}
    for hit in hits:
        document_id = str(hit.payload.get(DOCUMENT_FIELD, ""))
        version = int(hit.payload.get(VERSION_FIELD, 0))
        newest[document_id] = max(version, newest.get(document_id, version))
    kept = [
        h
        for h in hits
        if int(h.payload.get(VERSION_FIELD, 0)) == newest[str(h.payload.get(DOCUMENT_FIELD, ""))]
    ]
    return kept[:top_k]
