"""The catalogue of every event type: one place that lists them, for proto generation and decoding."""

from __future__ import annotations

from gyre_contracts.base import Event
from gyre_contracts.embed import (
    ChunksReady,
    DocumentDeleted,
    DocumentIndexed,
    EmbedRequest,
    EmbedResult,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    ReindexRequested,
    RetrieveRequest,
    RetrieveResult,
)
from gyre_contracts.evaluate import EvaluationCompleted, EvaluationProgress, EvaluationRequested
from gyre_contracts.feedback import FeedbackRecorded, FeedbackRejected, FeedbackSubmitted
from gyre_contracts.generate import (
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoad,
    GenerationLoadRequest,
    GenerationRequested,
    TokenDelta,
)
from gyre_contracts.improve import CandidateEvaluated, DatasetBuilt, ModelPromoted, PromptPromoted
from gyre_contracts.ingest import DocumentAccepted, DocumentDeletionRequested, DocumentRejected, DocumentSubmitted
from gyre_contracts.monitor import Alert, DeadLetter

ALL_EVENTS: tuple[type[Event], ...] = (
    DocumentSubmitted,
    DocumentAccepted,
    DocumentRejected,
    DocumentDeletionRequested,
    ChunksReady,
    DocumentIndexed,
    DocumentDeleted,
    ReindexRequested,
    ReindexProgress,
    ReindexCompleted,
    ReindexFailed,
    RetrieveRequest,
    RetrieveResult,
    EmbedRequest,
    EmbedResult,
    GenerationRequested,
    TokenDelta,
    GenerationCompleted,
    GenerationFailed,
    GenerationCancelRequested,
    GenerationLoadRequest,
    GenerationLoad,
    FeedbackSubmitted,
    FeedbackRecorded,
    FeedbackRejected,
    DatasetBuilt,
    CandidateEvaluated,
    EvaluationRequested,
    EvaluationProgress,
    EvaluationCompleted,
    PromptPromoted,
    ModelPromoted,
    Alert,
    DeadLetter,
)

EVENTS_BY_TYPE: dict[str, type[Event]] = {cls.event_type(): cls for cls in ALL_EVENTS}
