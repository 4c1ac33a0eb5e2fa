"""Every stream and durable consumer Gyre uses, in one table, created idempotently at start."""

from __future__ import annotations

from dataclasses import dataclass

from gyre_contracts import (
    ChunksReady,
    DocumentDeletionRequested,
    DocumentSubmitted,
    EvaluationRequested,
    Event,
    FeedbackRecorded,
    FeedbackSubmitted,
    GenerationRequested,
    ReindexRequested,
)
from gyre_runtime.config import Settings

# Buckets and object stores have their own table, beside the stores that own them; re-exported here.
from gyre_runtime.state.buckets import BUCKETS as BUCKETS
from gyre_runtime.state.buckets import OBJECT_STORES as OBJECT_STORES
from gyre_runtime.state.buckets import BucketSpec as BucketSpec

DAY = 24 * 3600.0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]  # suffixes after the prefix
    # The setting (in days) that says how long the stream keeps events; see stream_max_age_s.
    retention: str = "retention_days"
    duplicate_window_s: float = 120.0


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable pull consumer; N replicas of ``service`` bind to it and share its messages."""

    service: str
    durable: str
    stream: str
    filter_subjects: tuple[str, ...]
    events: tuple[type[Event], ...]
    ack_wait_s: float = 60.0
    max_ack_pending: int = 64
    backoff_s: tuple[float, ...] = (0.5, 2.0, 5.0, 15.0, 30.0)
    concurrency: int = 8
    # Longest a handler may run on one message: then it is cancelled, its heartbeat stops, the message
    # is naked (dead-lettered `processing_timeout` on its last delivery) and the slot is free again.
    max_processing_s: float = 300.0


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("GYRE_INGEST", ("ingest.>",), retention="retention_ingest_days"),  # raw documents
    StreamSpec("GYRE_EMBED", ("embed.>",)),
    StreamSpec("GYRE_INDEX", ("index.>",)),
    StreamSpec(  # whole conversations: every message of a request, every answer
        "GYRE_GENERATE", ("generate.requested", "generate.completed", "generate.failed"),
        retention="retention_generate_days",
    ),
    StreamSpec("GYRE_FEEDBACK", ("feedback.>",)),
    StreamSpec("GYRE_IMPROVE", ("improve.>",)),
    StreamSpec("GYRE_EVALUATE", ("evaluate.>",)),
    StreamSpec("GYRE_MONITOR", ("monitor.>",)),
    StreamSpec("GYRE_DLQ", ("dlq.>",), retention="retention_dlq_days"),  # copies of failed messages
)


def stream_max_age_s(spec: StreamSpec, settings: Settings) -> float:
    """How long ``spec``'s stream keeps events, from its retention setting; 0 means no age limit."""
    days = float(getattr(settings, spec.retention))
    return days * DAY

CONSUMERS: tuple[ConsumerSpec, ...] = (
    # Submissions arrive on ingest.submitted.<tenant> (the tenant in the subject: see bus/permissions.py).
    # Reading a document is bounded by GYRE_EXTRACTION_TIMEOUT_S (default 120 s), which ingest keeps below this.
    ConsumerSpec(
        "ingest", "ingest", "GYRE_INGEST", ("ingest.submitted.*",), (DocumentSubmitted,), concurrency=4,
        max_processing_s=300.0,
    ),
    ConsumerSpec("ingest", "ingest_index", "GYRE_INDEX", ("index.delete",), (DocumentDeletionRequested,)),
    # Several documents in flight feed the embedding scheduler's cross-message batches. A large
    # document takes seconds: the worker's in-progress heartbeat covers that, so the ack wait stays
    # short (a crashed replica's documents come back within it, inside the duplicate window).
    ConsumerSpec(
        "embed", "embed", "GYRE_EMBED", ("embed.requested",), (ChunksReady,),
        ack_wait_s=30.0, max_ack_pending=16, concurrency=8, max_processing_s=900.0,
    ),
    ConsumerSpec("embed", "embed_index", "GYRE_INDEX", ("index.delete",), (DocumentDeletionRequested,)),
    # One rebuild at a time in the whole deployment (max_ack_pending 1). The handler runs for the whole
    # rebuild and keeps its message in progress, so a replica that dies mid-rebuild gets it redelivered
    # (to itself or another replica) within the ack wait, and the rebuild starts over.
    ConsumerSpec(
        "embed", "embed_reindex", "GYRE_INDEX", ("index.reindex",), (ReindexRequested,),
        ack_wait_s=60.0, max_ack_pending=1, concurrency=1, backoff_s=(5.0, 15.0, 30.0, 60.0, 120.0),
        max_processing_s=DAY,  # a rebuild of a large collection runs for hours
    ),
    # Up to 8 generations per replica interleave token by token (no head-of-line blocking); more wait
    # in the stream, where the gateway sees them as backlog (gyre.generate.load) and answers 429.
    # max_ack_pending bounds the whole deployment: 8 replicas of 8. The handler keeps a long answer
    # in progress; a request redelivered after its client gave up is answered "expired", not generated.
    ConsumerSpec(
        "generate", "generate", "GYRE_GENERATE", ("generate.requested",), (GenerationRequested,),
        ack_wait_s=120.0, max_ack_pending=64, concurrency=8, max_processing_s=900.0,
    ),
    ConsumerSpec("feedback", "feedback", "GYRE_FEEDBACK", ("feedback.submitted",), (FeedbackSubmitted,)),
    ConsumerSpec("improve", "improve", "GYRE_FEEDBACK", ("feedback.recorded",), (FeedbackRecorded,)),
    # An evaluation runs for minutes: the handler keeps its message in progress, so a replica that dies
    # mid-run has it redelivered within the ack wait, and the run resumes from the items already scored.
    # Two runs per replica at once; more wait in the stream (each run saturates the generate replicas).
    ConsumerSpec(
        "evaluate", "evaluate", "GYRE_EVALUATE", ("evaluate.requested",), (EvaluationRequested,),
        ack_wait_s=60.0, max_ack_pending=8, concurrency=2, backoff_s=(5.0, 15.0, 30.0, 60.0, 120.0),
        max_processing_s=12 * 3600.0,  # a large golden set through the live pipeline runs for hours
    ),
)


def consumers_of(service: str) -> tuple[ConsumerSpec, ...]:
    return tuple(c for c in CONSUMERS if c.service == service)
