"""Feedback events: submitted by users, recorded with the answer's lineage, or rejected."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from gyre_contracts.base import Event, utc_now
from gyre_contracts.limits import DocumentId, FeedbackText, Identifier, Name, Rating, RequestId


class FeedbackSubmitted(Event, frozen=True, kw_only=True, tag="gyre.feedback.submitted.v1"):
    """A rating of one answer: -1 or 1 (thumbs), or 1..5 (stars)."""

    subject: ClassVar[str] = "feedback.submitted"
    feedback_id: Identifier
    request_id: RequestId
    rating: Rating
    comment: FeedbackText = ""
    correction: FeedbackText = ""
    submitted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class FeedbackRecorded(Event, frozen=True, kw_only=True, tag="gyre.feedback.recorded.v1"):
    """Feedback joined to its generation: question, answer, sources, model and prompt versions."""

    subject: ClassVar[str] = "feedback.recorded"
    feedback_id: Identifier
    request_id: RequestId
    rating: Rating
    comment: FeedbackText = ""
    correction: FeedbackText = ""
    question: str
    answer: str
    cited_documents: tuple[DocumentId, ...] = ()
    model_version: Name
    prompt_version: Name
    recorded_at: dt.datetime = msgspec.field(default_factory=utc_now)


class FeedbackRejected(Event, frozen=True, kw_only=True, tag="gyre.feedback.rejected.v1"):
    subject: ClassVar[str] = "feedback.rejected"
    feedback_id: Identifier
    request_id: RequestId
    reason: str
    rejected_at: dt.datetime = msgspec.field(default_factory=utc_now)
