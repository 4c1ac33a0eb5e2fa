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
from gyre_feedback.redaction import redact_feedback
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.state.tenants import PiiPolicy, TenantPolicy


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


class OnePolicy:
    def __init__(self, pii: PiiPolicy = "redact") -> None:
        self.policy = TenantPolicy(pii=pii)

    async def get(self, tenant: str) -> TenantPolicy:
        return self.policy


class Published:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def publish(self, event: Any, **_: Any) -> None:
        self.events.append(event)


async def test_the_handler_publishes_a_rejection_for_feedback_on_an_evaluation_answer() -> None:
    published = Published()
    handler = FeedbackHandler(
        OneGeneration(generation(purpose="evaluation")), published, OnePolicy()  # type: ignore[arg-type]
    )
    ctx = MessageContext(subject="feedback.submitted", event_id="e1", tenant="a", traceparent=None, delivery=1,
                         headers={})
    await handler(feedback(), ctx)
    [rejected] = published.events
    assert isinstance(rejected, FeedbackRejected)
    assert (rejected.feedback_id, rejected.request_id) == ("f1", "r1") and "evaluation run" in rejected.reason


# ---------------------------------------------------------------------------- personal data in comments

PERSONAL = "Wrong: call me on +44 20 7946 0958 or write to jane.doe@example.com"


def with_comment(comment: str = PERSONAL, correction: str = "IBAN DE89 3704 0044 0532 0130 00 is mine") -> Any:
    return FeedbackSubmitted(tenant="a", feedback_id="f1", request_id="r1", rating=-1, comment=comment,
                             correction=correction)


def test_comments_and_corrections_are_redacted_under_the_redact_policy() -> None:
    redacted = redact_feedback(with_comment(), "redact")
    assert redacted.feedback.comment == "Wrong: call me on [PHONE] or write to [EMAIL]"
    assert redacted.feedback.correction == "IBAN [IBAN] is mine"
    assert redacted.pii_found == {"email": 1, "phone": 1, "iban": 1} and redacted.refusal is None


def test_the_reject_policy_refuses_feedback_with_personal_data_and_keeps_no_values() -> None:
    redacted = redact_feedback(with_comment(), "reject")
    assert redacted.refusal is not None and "personal data" in redacted.refusal and "jane" not in redacted.refusal
    assert "jane" not in redacted.feedback.comment
    assert redact_feedback(with_comment("Great answer", ""), "reject").refusal is None


def test_the_allow_policy_keeps_feedback_as_sent() -> None:
    assert redact_feedback(with_comment(), "allow").feedback.comment == PERSONAL


async def test_the_handler_records_only_the_redacted_comment() -> None:
    published = Published()
    handler = FeedbackHandler(OneGeneration(generation()), published, OnePolicy())  # type: ignore[arg-type]
    ctx = MessageContext(subject="feedback.submitted", event_id="e1", tenant="a", traceparent=None, delivery=1,
                         headers={})
    await handler(with_comment(), ctx)
    [recorded] = published.events
    assert isinstance(recorded, FeedbackRecorded)
    assert "[EMAIL]" in recorded.comment and "jane" not in recorded.comment and "[IBAN]" in recorded.correction


async def test_the_handler_rejects_personal_data_under_the_reject_policy() -> None:
    published = Published()
    handler = FeedbackHandler(
        OneGeneration(generation()), published, OnePolicy("reject")  # type: ignore[arg-type]
    )
    ctx = MessageContext(subject="feedback.submitted", event_id="e1", tenant="a", traceparent=None, delivery=1,
                         headers={})
    await handler(with_comment(), ctx)
    [rejected] = published.events
    assert isinstance(rejected, FeedbackRejected) and "personal data" in rejected.reason
