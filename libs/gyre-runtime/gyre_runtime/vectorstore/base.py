"""The VectorStore port: what the embed service needs from any vector database."""

from __future__ import annotations

import uuid
from typing import Any, Protocol

import msgspec

# Fixed namespace: point ids must be the same in every process and every run.
POINT_NAMESPACE = uuid.UUID("6f1d7c2e-3b8a-5e4f-9a0b-1c2d3e4f5a6b")


def point_id(tenant: str, document_id: str, version: int, chunk_index: int) -> str:
    """Deterministic point id, so a redelivered message overwrites instead of duplicating."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}\x1f{document_id}\x1f{version}\x1f{chunk_index}"))


class VectorPoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    vector: list[float]
    payload: dict[str, Any]


class SearchHit(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    score: float
    payload: dict[str, Any]


class VectorStore(Protocol):
    """Every call is scoped to one tenant: there is no way to search across tenants."""

    async def replace_document(
        self, tenant: str, document_id: str, version: int, points: list[VectorPoint]
    ) -> None:
        """Upsert the new version's points, then drop every other version's (no empty window)."""

    async def delete_document(self, tenant: str, document_id: str) -> None: ...

    async def search(
        self, tenant: str, vector: list[float], top_k: int, metadata_filter: dict[str, Any] | None = None
    ) -> list[SearchHit]: ...

    async def count(self, tenant: str, document_id: str | None = None) -> int: ...

    async def close(self) -> None: ...
