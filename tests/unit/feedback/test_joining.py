"""Feedback is joined to the generation it rates, or rejected with a reason."""

from __future__ import annotations

from gyre_contracts import Citation, FeedbackRecorded, FeedbackSubmitted, GenerationCompleted, Timings, Usage
from gyre_feedback.joining import join_feedback


def generation(tenant: str = "a") -> GenerationCompleted:
    citation = Citation(number=1, document_id="doc-1", chunk_id="c1", score=0.9, excerpt="...")
    return GenerationCompleted(
        tenant=tenant, request_id="r1", question="q?", answer="a.", citations=(citation, citation),
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        timings=Timings(retrieval_ms=1, time_to_first_token_ms=2, total_ms=3),
        model_version="m:1", prompt_version="p:1",
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
