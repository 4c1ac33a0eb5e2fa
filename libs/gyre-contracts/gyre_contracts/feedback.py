"""Feedback events: submitted by users, recorded with the answer's lineage, or rejected."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from gyre_contracts.base import Event, utc_now
from gyre_contracts.limits import DocumentId, FeedbackText, Identifier, Name, Rating, RequestId


class _AboutAnAnswer(Event, frozen=True, kw_only=True):
    """What every feedback event starts with: its own id and the request whose answer it is about."""

    feedback_id: Identifier
    request_id: RequestId


class _RatingOfAnAnswer(_AboutAnAnswer, frozen=True, kw_only=True):
    """The user's words about an answer, as submitted and as recorded."""

    rating: Rating
    comment: FeedbackText = ""
    correction: FeedbackText = ""


class FeedbackSubmitted(_RatingOfAnAnswer, frozen=True, kw_only=True, tag="gyre.feedback.submitted.v1"):
    """A rating of one answer: -1 or 1 (thumbs), or 1..5 (stars)."""

    subject: ClassVar[str] = "feedback.submitted"
    submitted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class FeedbackRecorded(_RatingOfAnAnswer, frozen=True, kw_only=True, tag="gyre.feedback.recorded.v1"):
    """Feedback joined to its generation: question, answer, sources, model and prompt versions."""

    subject: ClassVar[str] = "feedback.recorded"
    question: str
    answer: str
    cited_documents: tuple[DocumentId, ...] = ()
    model_version: Name
    prompt_version: Name
    recorded_at: dt.datetime = msgspec.field(default_factory=utc_now)


class FeedbackRejected(_AboutAnAnswer, frozen=True, kw_only=True, tag="gyre.feedback.rejected.v1"):
    subject: ClassVar[str] = "feedback.rejected"
    reason: str
    rejected_at: dt.datetime = msgspec.field(default_factory=utc_now)
