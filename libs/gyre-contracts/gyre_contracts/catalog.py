"""The catalogue of every event type: one place that lists them, for proto generation and decoding."""

from __future__ import annotations

from gyre_contracts import embed, evaluate, feedback, generate, improve, ingest, monitor
from gyre_contracts.base import Event

ALL_EVENTS: tuple[type[Event], ...] = (
    ingest.DocumentSubmitted,
    ingest.DocumentAccepted,
    ingest.DocumentRejected,
    ingest.DocumentDeletionRequested,
    embed.ChunksReady,
    embed.DocumentIndexed,
    embed.DocumentDeleted,
    embed.ReindexRequested,
    embed.ReindexProgress,
    embed.ReindexCompleted,
    embed.ReindexFailed,
    embed.RetrieveRequest,
    embed.RetrieveResult,
    embed.EmbedRequest,
    embed.EmbedResult,
    generate.GenerationRequested,
    generate.TokenDelta,
    generate.GenerationCompleted,
    generate.GenerationFailed,
    generate.GenerationCancelRequested,
    generate.GenerationLoadRequest,
    generate.GenerationLoad,
    feedback.FeedbackSubmitted,
    feedback.FeedbackRecorded,
    feedback.FeedbackRejected,
    improve.DatasetBuilt,
    improve.CandidateEvaluated,
    evaluate.EvaluationRequested,
    evaluate.EvaluationProgress,
    evaluate.EvaluationCompleted,
    improve.PromptPromoted,
    improve.ModelPromoted,
    monitor.Alert,
    monitor.DeadLetter,
)

EVENTS_BY_TYPE: dict[str, type[Event]] = {cls.event_type(): cls for cls in ALL_EVENTS}

# Contracts no service produces yet: the improvement loop's (a dataset built from feedback, a candidate
# evaluated, a prompt promoted behind the evaluation gate) get their producer with that loop.
# Every other event has a producer: a service's declared publishers (bus/permissions.py), a
# responder's reply, or the operator's CLI (ReindexRequested from `gyre reindex`, ModelPromoted from
# `gyre models promote` and `rollback`).
PLANNED: tuple[type[Event], ...] = (
    improve.DatasetBuilt,
    improve.CandidateEvaluated,
    improve.PromptPromoted,
)
