"""Vector storage: the VectorStore port, the BM25 encoder that feeds it, and the one place that picks an adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gyre_runtime.vectorstore.base import (
    DEFAULT_COLLECTION,
    IncompatibleCollection,
    InvalidSearch,
    SearchHit,
    SearchMode,
    SparseVector,
    VectorPoint,
    VectorStore,
    VectorStoreError,
    point_id,
)
from gyre_runtime.vectorstore.bm25 import Bm25Encoder

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

__all__ = [
    "DEFAULT_COLLECTION",
    "Bm25Encoder",
    "IncompatibleCollection",
    "InvalidSearch",
    "SearchHit",
    "SearchMode",
    "SparseVector",
    "VectorPoint",
    "VectorStore",
    "VectorStoreError",
    "drop_vector_collection",
    "open_vector_store",
    "point_id",
    "vector_store_type",
]


def vector_store_type(settings: Settings) -> type[VectorStore]:
    """The adapter the settings choose: Qdrant through qdrant-client when ``qdrant_url`` is set, else Qdrant Edge.

    The adapters are imported here so that each one's library is needed only where it is used.
    """
    if settings.qdrant_url:
        from gyre_runtime.vectorstore.qdrant_server import QdrantServerStore

        return QdrantServerStore
    from gyre_runtime.vectorstore.edge import QdrantEdgeStore

    return QdrantEdgeStore


async def open_vector_store(settings: Settings, collection: str, dimension: int) -> VectorStore:
    """The collection's store (created when missing), of the adapter the settings choose.

    ``qdrant_url``: ``http(s)://host:6333`` for a server, or ``:memory:`` / a folder for qdrant-client's
    local mode; empty for a Qdrant Edge shard in ``<qdrant_shard_path>/<collection>``.
    """
    return await vector_store_type(settings).open(settings, collection, dimension)


async def drop_vector_collection(settings: Settings, collection: str) -> None:
    """Delete a collection that no store has open, with every point in it (a no-op when it does not exist)."""
    await vector_store_type(settings).drop_collection(settings, collection)
