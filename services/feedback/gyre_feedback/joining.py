"""Joining a rating to its generation's lineage, or saying why it cannot be joined."""

from __future__ import annotations

from gyre_contracts import FeedbackRecorded, FeedbackSubmitted, GenerationCompleted


def rating_problem(rating: int) -> str | None:
    if rating in (-1, 1) or 1 <= rating <= 5:
        return None
    return f"rating {rating} is not -1 or 1 (thumbs) or 1..5 (stars)"


def join_feedback(feedback: FeedbackSubmitted, generation: GenerationCompleted | None) -> FeedbackRecorded | str:
    """The recorded feedback, or the reason it is rejected."""
    if generation is None or generation.tenant != feedback.tenant:
        # Another tenant's request looks exactly like an unknown one: nothing leaks across tenants.
        return f"unknown request_id {feedback.request_id!r}: no generation with that id for this tenant"
    if generation.purpose == "evaluation":
        # Evaluation answers are graded by the evaluate service; a rating here would enter the
        # user feedback that improve learns from as if a user had judged them.
        return (
            f"request_id {feedback.request_id!r} is an evaluation run's generation, not a user's answer: "
            "only answers to user requests take feedback"
        )
    problem = rating_problem(feedback.rating)
    if problem:
        return problem
    return FeedbackRecorded(
        tenant=feedback.tenant, feedback_id=feedback.feedback_id, request_id=feedback.request_id,
        rating=feedback.rating, comment=feedback.comment, correction=feedback.correction,
        question=generation.question, answer=generation.answer,
        cited_documents=tuple(dict.fromkeys(c.document_id for c in generation.citations)),
        model_version=generation.model_version, prompt_version=generation.prompt_version,
    )
