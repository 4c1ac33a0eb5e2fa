"""Feedback is joined to the generation it rates, or rejected with a reason."""

from __future__ import annotations

from typing import Any, Literal

from gyre_contracts import (
    Citation,
    FeedbackRecorded,
    FeedbackRejected,
    FeedbackSubmitted,
    GenerationCompleted,
    Timings,
    Usage,
)
from gyre_feedback.handlers import FeedbackHandler
from gyre_feedback.joining import join_feedback
from gyre_runtime.bus.consumer import MessageContext


def generation(tenant: str = "a", purpose: Literal["user", "evaluation"] = "user") -> GenerationCompleted:
    citation = Citation(number=1, document_id="doc-1", chunk_id="c1", score=0.9, excerpt="...")
    return GenerationCompleted(
        tenant=tenant, request_id="r1", question="q?", answer="a.", citations=(citation, citation),
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        timings=Timings(retrieval_ms=1, time_to_first_token_ms=2, total_ms=3),
        model_version="m:1", prompt_version="p:1", purpose=purpose,
    )


def feedback(rating: int = 1, tenant: str = "a") -> FeedbackSubmitted:
    return FeedbackSubmitted(tenant=tenant, feedback_id="f1", request_id="r1", rating=rating, comment="good")


def test_feedback_is_joined_to_its_generations_lineage() -> None:
    recorded = join_feedback(feedback(), generation())
    assert isinstance(recorded, FeedbackRecorded)
    assert (recorded.question, recorded.answer) == ("q?", "a.")
    assert recorded.cited_documents == ("doc-1",)
    assert (recorded.model_version, recorded.prompt_version) == ("m:1", "p:1")


def test_feedback_for_an_unknown_request_is_rejected_with_a_reason() -> None:
    reason = join_feedback(feedback(), None)
    assert isinstance(reason, str) and "unknown request_id 'r1'" in reason


def test_feedback_on_another_tenants_answer_looks_unknown() -> None:
    reason = join_feedback(feedback(tenant="b"), generation(tenant="a"))
    assert isinstance(reason, str) and "unknown request_id" in reason


def test_ratings_outside_thumbs_and_stars_are_rejected() -> None:
    assert isinstance(join_feedback(feedback(rating=0), generation()), str)
    assert isinstance(join_feedback(feedback(rating=6), generation()), str)
    assert isinstance(join_feedback(feedback(rating=-1), generation()), FeedbackRecorded)
    assert isinstance(join_feedback(feedback(rating=5), generation()), FeedbackRecorded)


def test_feedback_on_an_evaluation_runs_answer_is_rejected_with_a_reason() -> None:
    reason = join_feedback(feedback(), generation(purpose="evaluation"))
    assert isinstance(reason, str) and "evaluation run" in reason and "'r1'" in reason


def test_another_tenants_evaluation_answer_still_looks_unknown() -> None:
    # The tenant check comes first: the refusal must not tell one tenant what another evaluates.
    reason = join_feedback(feedback(tenant="b"), generation(tenant="a", purpose="evaluation"))
    assert isinstance(reason, str) and "unknown request_id" in reason


class OneGeneration:
    def __init__(self, record: GenerationCompleted) -> None:
        self.record = record

    async def get(self, request_id: str) -> GenerationCompleted | None:
        return self.record if request_id == self.record.request_id else None


class Published:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, event: Any, **_: Any) -> None:
        self.events.append(event)


async def test_the_handler_publishes_a_rejection_for_feedback_on_an_evaluation_answer() -> None:
    published = Published()
    handler = FeedbackHandler(OneGeneration(generation(purpose="evaluation")), published)  # type: ignore[arg-type]
    ctx = MessageContext(subject="feedback.submitted", event_id="e1", tenant="a", traceparent=None, delivery=1,
                         headers={})
    await handler(feedback(), ctx)
    [rejected] = published.events
    assert isinstance(rejected, FeedbackRejected)
    assert (rejected.feedback_id, rejected.request_id) == ("f1", "r1") and "evaluation run" in rejected.reason
