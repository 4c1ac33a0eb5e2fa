"""Generation events: requested, streamed token deltas, completed, failed, cancel and load requests."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, utc_now
from gyre_contracts.limits import (
    STOP_SEQUENCES_MAX,
    Count,
    DocumentId,
    Identifier,
    MaxTokens,
    Milliseconds,
    Name,
    RequestId,
    RetrievalTopK,
    SamplingTopK,
    Seed,
    ShortText,
    StopSequence,
    Temperature,
    TopP,
)


class ChatMessage(Model, frozen=True, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: str


class SamplingParams(Model, frozen=True, kw_only=True):
    max_tokens: MaxTokens = 256
    temperature: Temperature = 0.0
    top_p: TopP = 1.0
    top_k: SamplingTopK = 50
    seed: Seed | None = None
    stop: Annotated[tuple[StopSequence, ...], msgspec.Meta(max_length=STOP_SEQUENCES_MAX)] = ()


class GenerationRequested(Event, frozen=True, kw_only=True, tag="gyre.generate.requested.v1"):
    subject: ClassVar[str] = "generate.requested"
    request_id: RequestId
    messages: Annotated[tuple[ChatMessage, ...], msgspec.Meta(min_length=1)]
    params: SamplingParams = SamplingParams()
    retrieval: bool = True
    top_k: RetrievalTopK = 4
    model: Name = ""
    stream: bool = True
    prompt_label: Name = "production"
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)
    retrieval_mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    # "evaluation": sent by the evaluate service; never counted as user traffic (no feedback joins,
    # not in the monitor's user figures).
    purpose: Literal["user", "evaluation"] = "user"


class TokenDelta(Event, frozen=True, kw_only=True, tag="gyre.generate.token.v1"):
    """One streamed piece of an answer on ``gyre.generate.stream.<request_id>`` (core NATS)."""

    subject: ClassVar[str] = "generate.stream"
    request_id: RequestId
    index: Count
    text: str


class Citation(Model, frozen=True, kw_only=True):
    """A numbered source of an answer: ``[n]`` in the text refers to ``number`` n."""

    number: Annotated[int, msgspec.Meta(ge=1)]
    document_id: DocumentId
    chunk_id: Identifier
    title: str = ""
    score: float
    excerpt: str


class Usage(Model, frozen=True, kw_only=True):
    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count


class Timings(Model, frozen=True, kw_only=True):
    retrieval_ms: Milliseconds
    time_to_first_token_ms: Milliseconds
    total_ms: Milliseconds
    # CPU time the generate process spent while this request ran (all its threads; requests that ran
    # at the same time share it, so it is exact only when one runs at a time).
    cpu_ms: Milliseconds | None = None


class Grounding(Model, frozen=True, kw_only=True):
    """The grounding check of an answer: how many of its sentences the cited sources support.

    ``action``: ``kept`` (every sentence supported), ``trimmed`` (unsupported sentences dropped),
    ``extractive`` (too little supported: the answer is the best-supporting source sentences, quoted),
    ``none`` (no sources to check against: retrieval off, or a fixed answer).
    """

    action: Literal["kept", "trimmed", "extractive", "none"]
    supported_sentences: Count = 0
    checked_sentences: Count = 0
    loop_cut: bool = False  # the model started repeating itself and was stopped


class GenerationCompleted(Event, frozen=True, kw_only=True, tag="gyre.generate.completed.v1"):
    subject: ClassVar[str] = "generate.completed"
    request_id: RequestId
    question: str
    answer: str
    citations: tuple[Citation, ...] = ()
    usage: Usage
    timings: Timings
    finish_reason: Name = "stop"
    model_version: Name
    prompt_version: Name
    guardrails: tuple[Name, ...] = ()  # guardrails that acted: pii_redacted, blocked_term, injection_flagged ...
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)
    purpose: Literal["user", "evaluation"] = "user"
    grounding: Grounding | None = None
    # Every source the prompt held (``citations`` are only those the answer cites).
    sources: tuple[Citation, ...] = ()


class GenerationCancelRequested(Event, frozen=True, kw_only=True, tag="gyre.generate.cancel.v1"):
    """Stop a generation (its client went away), on core ``gyre.generate.cancel.<request_id>``."""

    subject: ClassVar[str] = "generate.cancel"
    request_id: RequestId
    reason: ShortText = "client disconnected"


# Why a generation failed, for machines: the gateway maps each to an HTTP status (docs/architecture.md).
FailureCode = Literal[
    "",  # unknown (publishers older than the codes)
    "invalid_request",  # a parameter out of range, no user message: the requester can fix it (400)
    "context_length_exceeded",  # the input does not fit the model's context (400)
    "unknown_prompt_label",  # no such prompt name, label or version (404)
    "unknown_model",  # no such model (404)
    "expired",  # the request waited longer than a client waits (503: resend it)
    "retrieval_unavailable",  # the retrieval service did not answer (503)
    "model_failed",  # the backend failed while generating (502)
]


class GenerationFailed(Event, frozen=True, kw_only=True, tag="gyre.generate.failed.v1"):
    subject: ClassVar[str] = "generate.failed"
    request_id: RequestId
    error: str
    failed_at: dt.datetime = msgspec.field(default_factory=utc_now)
    code: FailureCode = ""
    purpose: Literal["user", "evaluation"] = "user"


class GenerationLoadRequest(Event, frozen=True, kw_only=True, tag="gyre.generate.load_request.v1"):
    """Request/reply on core ``gyre.generate.load``: how busy generation is, asked before publishing a request.

    One generate replica answers (queue group ``generate``) with a GenerationLoad.
    """

    subject: ClassVar[str] = "generate.load"


class GenerationLoad(Event, frozen=True, kw_only=True, tag="gyre.generate.load.v1"):
    """The reply to a GenerationLoadRequest: generations accepted and not finished, against what runs at once.

    ``in_flight`` = generations the answering replica runs now + ``queued``, the requests no replica
    has picked up yet (the generate consumer's backlog, shared by every replica). ``capacity``: the
    generations one replica runs at once. A backlog only forms when every replica is full, so
    ``in_flight - capacity`` is how many requests wait: refuse more (429 with Retry-After) past an allowance.
    """

    subject: ClassVar[str] = "generate.load"
    in_flight: Count
    capacity: Count
    queued: Count = 0
    replica: Name = ""
