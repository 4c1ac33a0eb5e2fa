"""Feedback tallies: counts of positive and negative ratings, idempotent under redelivery."""

from __future__ import annotations

from typing import Literal

import msgspec

# Enough to recognise a redelivery, which comes within the consumer's ack wait.
RECENT_IDS = 1000


class Tally(msgspec.Struct, kw_only=True):
    subject: str
    count: int = 0
    positive: int = 0
    negative: int = 0
    neutral: int = 0
    rating_sum: int = 0
    recent_feedback_ids: list[str] = msgspec.field(default_factory=list)


def sentiment(rating: int) -> Literal["positive", "negative", "neutral"]:
    """Thumbs are -1 and 1 (1 counts as thumbs-up); stars 2..5: 4-5 positive, 3 neutral, 2 negative."""
    if rating == 1 or rating >= 4:
        return "positive"
    if rating == 3:
        return "neutral"
    return "negative"


def add_rating(tally: Tally, feedback_id: str, rating: int) -> Tally | None:
    """The tally with this rating added, or None when this feedback was already counted."""
    if feedback_id in tally.recent_feedback_ids:
        return None
    kind = sentiment(rating)
    return Tally(
        subject=tally.subject,
        count=tally.count + 1,
        positive=tally.positive + (kind == "positive"),
        negative=tally.negative + (kind == "negative"),
        neutral=tally.neutral + (kind == "neutral"),
        rating_sum=tally.rating_sum + rating,
        recent_feedback_ids=[*tally.recent_feedback_ids, feedback_id][-RECENT_IDS:],
    )
