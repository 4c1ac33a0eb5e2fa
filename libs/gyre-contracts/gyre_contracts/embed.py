"""Vectorisation and retrieval events: chunks to embed, index updates, retrieval and embedding calls."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, utc_now


class Chunk(Model, frozen=True, kw_only=True):
    """One piece of a document, sized in tokens of the embedding model."""

    index: int
    text: str
    start: int
    end: int
    token_count: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None


class ChunksReady(Event, frozen=True, kw_only=True, tag="gyre.embed.requested.v1"):
    """All chunks of one document version, ready to embed."""

    subject: ClassVar[str] = "embed.requested"
    document_id: str
    version: int
    title: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    chunks: tuple[Chunk, ...]
    submitted_at: dt.datetime


class DocumentIndexed(Event, frozen=True, kw_only=True, tag="gyre.index.updated.v1"):
    subject: ClassVar[str] = "index.updated"
    document_id: str
    version: int
    chunk_count: int
    embedding_model: str
    embed_ms: float
    submitted_at: dt.datetime
    indexed_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentDeleted(Event, frozen=True, kw_only=True, tag="gyre.index.deleted.v1"):
    subject: ClassVar[str] = "index.deleted"
    document_id: str
    deleted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class RetrieveRequest(Event, frozen=True, kw_only=True, tag="gyre.retrieve.request.v1"):
    """Request/reply on ``gyre.retrieve``: top-k chunks for a query, always within one tenant."""

    subject: ClassVar[str] = "retrieve"
    query: str
    top_k: int = 5
    filter: dict[str, Any] = msgspec.field(default_factory=dict)
    request_id: str = ""
    mode: Literal["dense", "sparse", "hybrid"] = "hybrid"


class RetrievedChunk(Model, frozen=True, kw_only=True):
    document_id: str
    chunk_id: str
    version: int
    index: int
    score: float
    text: str
    title: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    heading_path: tuple[str, ...] = ()
    page: int | None = None


class RetrieveResult(Event, frozen=True, kw_only=True, tag="gyre.retrieve.result.v1"):
    subject: ClassVar[str] = "retrieve"
    hits: tuple[RetrievedChunk, ...] = ()
    retrieval_ms: float = 0.0
    embedding_model: str = ""
    error: str = ""


class EmbedRequest(Event, frozen=True, kw_only=True, tag="gyre.embeddings.request.v1"):
    """Request/reply on ``gyre.embeddings``: vectors for texts (the OpenAI embeddings endpoint)."""

    subject: ClassVar[str] = "embeddings"
    texts: tuple[str, ...]


class EmbedResult(Event, frozen=True, kw_only=True, tag="gyre.embeddings.result.v1"):
    subject: ClassVar[str] = "embeddings"
    vectors: tuple[tuple[float, ...], ...] = ()
    token_counts: tuple[int, ...] = ()
    embedding_model: str = ""
    error: str = ""
