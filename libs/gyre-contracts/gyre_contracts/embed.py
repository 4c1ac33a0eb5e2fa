"""Vectorisation and retrieval events: chunks to embed, index updates, retrieval and embedding calls."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, new_id, utc_now
from gyre_contracts.limits import (
    EMBED_MAX_INPUTS,
    Count,
    DocumentId,
    EmbedInput,
    Identifier,
    Metadata,
    Milliseconds,
    Name,
    OptionalRequestId,
    RequestId,
    TopK,
    check_metadata,
)


class Chunk(Model, frozen=True, kw_only=True):
    """One piece of a document, sized in tokens of the embedding model."""

    index: Count
    text: str
    start: Count
    end: Count
    token_count: Count
    heading_path: tuple[str, ...] = ()
    page: Count | None = None


class ChunksReady(Event, frozen=True, kw_only=True, tag="gyre.embed.requested.v1"):
    """All chunks of one document version, ready to embed."""

    subject: ClassVar[str] = "embed.requested"
    document_id: DocumentId
    version: Count
    title: str = ""  # the submission's title or the one extracted from the document: not capped
    metadata: Metadata = msgspec.field(default_factory=dict)
    chunks: tuple[Chunk, ...]
    submitted_at: dt.datetime

    def __post_init__(self) -> None:
        check_metadata(self.metadata)


class DocumentIndexed(Event, frozen=True, kw_only=True, tag="gyre.index.updated.v1"):
    subject: ClassVar[str] = "index.updated"
    document_id: DocumentId
    version: Count
    chunk_count: Count
    embedding_model: Name
    embed_ms: Milliseconds
    submitted_at: dt.datetime
    indexed_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentDeleted(Event, frozen=True, kw_only=True, tag="gyre.index.deleted.v1"):
    subject: ClassVar[str] = "index.deleted"
    document_id: DocumentId
    deleted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class RetrieveRequest(Event, frozen=True, kw_only=True, tag="gyre.retrieve.request.v1"):
    """Request/reply on ``gyre.retrieve``: top-k chunks for a query, always within one tenant."""

    subject: ClassVar[str] = "retrieve"
    query: str
    top_k: TopK = 5
    # Metadata key -> value every hit must have: the same limits as the metadata it matches.
    filter: Metadata = msgspec.field(default_factory=dict)
    request_id: OptionalRequestId = ""
    mode: Literal["dense", "sparse", "hybrid"] = "hybrid"

    def __post_init__(self) -> None:
        check_metadata(self.filter, "filter")


class RetrievedChunk(Model, frozen=True, kw_only=True):
    document_id: DocumentId
    chunk_id: Identifier
    version: Count
    index: Count
    score: float
    text: str
    title: str = ""
    metadata: Metadata = msgspec.field(default_factory=dict)
    heading_path: tuple[str, ...] = ()
    page: Count | None = None


class RetrieveResult(Event, frozen=True, kw_only=True, tag="gyre.retrieve.result.v1"):
    subject: ClassVar[str] = "retrieve"
    hits: tuple[RetrievedChunk, ...] = ()
    retrieval_ms: Milliseconds = 0.0
    embedding_model: Name = ""
    error: str = ""


class EmbedRequest(Event, frozen=True, kw_only=True, tag="gyre.embeddings.request.v1"):
    """Request/reply on ``gyre.embeddings``: vectors for texts (the OpenAI embeddings endpoint)."""

    subject: ClassVar[str] = "embeddings"
    texts: Annotated[tuple[EmbedInput, ...], msgspec.Meta(max_length=EMBED_MAX_INPUTS)]


class EmbedResult(Event, frozen=True, kw_only=True, tag="gyre.embeddings.result.v1"):
    subject: ClassVar[str] = "embeddings"
    vectors: tuple[tuple[float, ...], ...] = ()
    token_counts: tuple[Count, ...] = ()
    embedding_model: Name = ""
    error: str = ""
    # With ``error``: the tenant's embedding queue is full; asking again after this many seconds may succeed.
    retry_after_s: float = 0.0


class _AboutARebuild(Event, frozen=True, kw_only=True):
    """What every rebuild event starts with: the request that started it and the collection it builds."""

    request_id: RequestId
    collection: Name


class ReindexRequested(_AboutARebuild, frozen=True, kw_only=True, tag="gyre.index.reindex.v1"):
    """Build ``collection`` anew from the stored ChunksReady events, then make it the collection that serves search.

    It covers every tenant (``tenant`` is only who asked). ``embedding_model`` names a model folder in
    the model store; empty keeps the model of the active collection. The rebuild refuses to switch when
    documents the registry says are searchable cannot be replayed (their events are older than the
    stream keeps), unless ``allow_missing`` is set.
    """

    subject: ClassVar[str] = "index.reindex"
    request_id: RequestId = msgspec.field(default_factory=new_id)
    embedding_model: Name = ""
    allow_missing: bool = False
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)


class ReindexProgress(_AboutARebuild, frozen=True, kw_only=True, tag="gyre.index.reindex_progress.v1"):
    """How far a rebuild is: sent when it starts replaying, then every few seconds."""

    subject: ClassVar[str] = "index.reindex_progress"
    replayed_events: Count
    stream_events: Count
    documents: Count
    points: Count


class ReindexCompleted(_AboutARebuild, frozen=True, kw_only=True, tag="gyre.index.reindexed.v1"):
    """The rebuilt collection serves search now; the previous one is removed.

    ``documents``/``points``: what the new collection holds; ``skipped_events``: replayed events of
    superseded versions, deleted documents or documents the registry does not know;
    ``missing_documents``: searchable documents whose events were no longer in the stream
    (only with ``allow_missing``), as ``tenant/document_id``, at most 100 listed.
    """

    subject: ClassVar[str] = "index.reindexed"
    previous_collection: Name
    embedding_model: Name
    documents: Count
    points: Count
    previous_points: Count
    replayed_events: Count
    skipped_events: Count
    missing_count: Count = 0
    missing_documents: tuple[str, ...] = ()
    duration_ms: Milliseconds
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)


class ReindexFailed(_AboutARebuild, frozen=True, kw_only=True, tag="gyre.index.reindex_failed.v1"):
    """A rebuild stopped; the active collection is unchanged. ``final`` is false when it will be retried."""

    subject: ClassVar[str] = "index.reindex_failed"
    error: str
    attempt: Count
    final: bool
    missing_count: Count = 0
    missing_documents: tuple[str, ...] = ()
