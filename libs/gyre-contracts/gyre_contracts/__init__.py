"""Gyre's event contracts: every event as a frozen, tagged, versioned msgspec Struct."""

from gyre_contracts.base import Event, Model, new_id, utc_now
from gyre_contracts.catalog import ALL_EVENTS, EVENTS_BY_TYPE
from gyre_contracts.embed import (
    Chunk,
    ChunksReady,
    DocumentDeleted,
    DocumentIndexed,
    EmbedRequest,
    EmbedResult,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    ReindexRequested,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResult,
)
from gyre_contracts.envelope import EnvelopeError, cloudevent_headers, decode_event, encode_body
from gyre_contracts.feedback import FeedbackRecorded, FeedbackRejected, FeedbackSubmitted
from gyre_contracts.generate import (
    ChatMessage,
    Citation,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoad,
    GenerationLoadRequest,
    GenerationRequested,
    SamplingParams,
    Timings,
    TokenDelta,
    Usage,
)
from gyre_contracts.improve import DatasetBuilt, EvaluationCompleted, ModelPromoted, PromptPromoted
from gyre_contracts.ingest import (
    DocumentAccepted,
    DocumentDeletionRequested,
    DocumentRejected,
    DocumentSubmitted,
    Rejection,
)
from gyre_contracts.monitor import Alert, DeadLetter

__all__ = [
    "ALL_EVENTS", "EVENTS_BY_TYPE", "Alert", "ChatMessage", "Chunk", "ChunksReady", "Citation",
    "DatasetBuilt", "DeadLetter", "DocumentAccepted", "DocumentDeleted", "DocumentDeletionRequested",
    "DocumentIndexed", "DocumentRejected", "DocumentSubmitted", "EmbedRequest", "EmbedResult",
    "EnvelopeError", "EvaluationCompleted", "Event", "FeedbackRecorded", "FeedbackRejected",
    "FeedbackSubmitted", "GenerationCancelRequested", "GenerationCompleted", "GenerationFailed", "GenerationLoad",
    "GenerationLoadRequest", "GenerationRequested", "Model",
    "ModelPromoted", "PromptPromoted", "ReindexCompleted", "ReindexFailed", "ReindexProgress", "ReindexRequested",
    "Rejection", "RetrieveRequest", "RetrieveResult", "RetrievedChunk",
    "SamplingParams", "Timings", "TokenDelta", "Usage", "cloudevent_headers", "decode_event",
    "encode_body", "new_id", "utc_now",
]
