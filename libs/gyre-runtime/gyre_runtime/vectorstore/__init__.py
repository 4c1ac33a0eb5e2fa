"""Vector storage: the VectorStore port, the BM25 encoder that feeds it, and the one place that picks an adapter."""

from __future__ import annotations

import asyncio
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
    "open_vector_store",
    "point_id",
]


async def open_vector_store(
    settings: Settings,
    dimension: int,
    *,
    url: str | None = None,
    collection: str = DEFAULT_COLLECTION,
    api_key: str | None = None,
) -> VectorStore:
    """The collection's store: Qdrant through qdrant-client when ``url`` is set, else a Qdrant Edge shard.

    ``url``: ``http(s)://host:6333`` for a server, or ``:memory:`` / a folder for qdrant-client's
    local mode. The Edge shard lives in ``<settings.qdrant_shard_path>/<collection>``.
    The adapters are imported here so that each is needed only where it is used.
    """
    if url:
        from gyre_runtime.vectorstore.qdrant_server import QdrantServerStore

        return await QdrantServerStore.open(url, collection, dimension, api_key=api_key)
    from gyre_runtime.vectorstore.edge import QdrantEdgeStore

    return await asyncio.to_thread(QdrantEdgeStore.open_collection, settings.qdrant_shard_path, collection, dimension)
