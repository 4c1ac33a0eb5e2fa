"""Generation events: requested, streamed token deltas, completed, failed, cancel and load requests."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, utc_now


class ChatMessage(Model, frozen=True, kw_only=True):
    role: Literal["system", "user", "assistant"]
    content: str


class SamplingParams(Model, frozen=True, kw_only=True):
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()


class GenerationRequested(Event, frozen=True, kw_only=True, tag="gyre.generate.requested.v1"):
    subject: ClassVar[str] = "generate.requested"
    request_id: str
    messages: tuple[ChatMessage, ...]
    params: SamplingParams = SamplingParams()
    retrieval: bool = True
    top_k: int = 4
    model: str = ""
    stream: bool = True
    prompt_label: str = "production"
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)


class TokenDelta(Event, frozen=True, kw_only=True, tag="gyre.generate.token.v1"):
    """One streamed piece of an answer on ``gyre.generate.stream.<request_id>`` (core NATS)."""

    subject: ClassVar[str] = "generate.stream"
    request_id: str
    index: int
    text: str


class Citation(Model, frozen=True, kw_only=True):
    """A numbered source of an answer: ``[n]`` in the text refers to ``number`` n."""

    number: int
    document_id: str
    chunk_id: str
    title: str = ""
    score: float
    excerpt: str


class Usage(Model, frozen=True, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Timings(Model, frozen=True, kw_only=True):
    retrieval_ms: float
    time_to_first_token_ms: float
    total_ms: float


class GenerationCompleted(Event, frozen=True, kw_only=True, tag="gyre.generate.completed.v1"):
    subject: ClassVar[str] = "generate.completed"
    request_id: str
    question: str
    answer: str
    citations: tuple[Citation, ...] = ()
    usage: Usage
    timings: Timings
    finish_reason: str = "stop"
    model_version: str
    prompt_version: str
    guardrails: tuple[str, ...] = ()  # guardrails that acted: pii_redacted, blocked_term, injection_flagged ...
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)


class GenerationCancelRequested(Event, frozen=True, kw_only=True, tag="gyre.generate.cancel.v1"):
    """Stop a generation (its client went away), on core ``gyre.generate.cancel.<request_id>``."""

    subject: ClassVar[str] = "generate.cancel"
    request_id: str
    reason: str = "client disconnected"


class GenerationFailed(Event, frozen=True, kw_only=True, tag="gyre.generate.failed.v1"):
    subject: ClassVar[str] = "generate.failed"
    request_id: str
    error: str
    failed_at: dt.datetime = msgspec.field(default_factory=utc_now)


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
    in_flight: int
    capacity: int
    queued: int = 0
    replica: str = ""
