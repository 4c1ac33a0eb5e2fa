"""Vectorisation and retrieval events: chunks to embed, index updates, retrieval and embedding calls."""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, new_id, utc_now


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


class ReindexRequested(Event, frozen=True, kw_only=True, tag="gyre.index.reindex.v1"):
    """Build ``collection`` anew from the stored ChunksReady events, then make it the collection that serves search.

    It covers every tenant (``tenant`` is only who asked). ``embedding_model`` names a model folder in
    the model store; empty keeps the model of the active collection. The rebuild refuses to switch when
    documents the registry says are searchable cannot be replayed (their events are older than the
    stream keeps), unless ``allow_missing`` is set.
    """

    subject: ClassVar[str] = "index.reindex"
    request_id: str = msgspec.field(default_factory=new_id)
    collection: str
    embedding_model: str = ""
    allow_missing: bool = False
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)


class ReindexProgress(Event, frozen=True, kw_only=True, tag="gyre.index.reindex_progress.v1"):
    """How far a rebuild is: sent when it starts replaying, then every few seconds."""

    subject: ClassVar[str] = "index.reindex_progress"
    request_id: str
    collection: str
    replayed_events: int
    stream_events: int
    documents: int
    points: int


class ReindexCompleted(Event, frozen=True, kw_only=True, tag="gyre.index.reindexed.v1"):
    """The rebuilt collection serves search now; the previous one is removed.

    ``documents``/``points``: what the new collection holds; ``skipped_events``: replayed events of
    superseded versions, deleted documents or documents the registry does not know;
    ``missing_documents``: searchable documents whose events were no longer in the stream
    (only with ``allow_missing``), as ``tenant/document_id``, at most 100 listed.
    """

    subject: ClassVar[str] = "index.reindexed"
    request_id: str
    collection: str
    previous_collection: str
    embedding_model: str
    documents: int
    points: int
    previous_points: int
    replayed_events: int
    skipped_events: int
    missing_count: int = 0
    missing_documents: tuple[str, ...] = ()
    duration_ms: float
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)


class ReindexFailed(Event, frozen=True, kw_only=True, tag="gyre.index.reindex_failed.v1"):
    """A rebuild stopped; the active collection is unchanged. ``final`` is false when it will be retried."""

    subject: ClassVar[str] = "index.reindex_failed"
    request_id: str
    collection: str
    error: str
    attempt: int
    final: bool
    missing_count: int = 0
    missing_documents: tuple[str, ...] = ()
