"""Feedback: only on an answer this tenant received, then a FeedbackSubmitted event."""

from __future__ import annotations

from gyre_contracts import FeedbackSubmitted, new_id
from gyre_gateway.errors import ApiError
from gyre_gateway.feedback.protocol import FeedbackCreate, FeedbackReceipt
from gyre_gateway.upstream import connected, publish
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service
from gyre_runtime.state.generations import GenerationStore

log = get_logger()


async def submit_feedback(
    service: Service, tenant: str, body: FeedbackCreate, *, traceparent: str | None = None
) -> FeedbackReceipt:
    generation = await (await GenerationStore.open(connected(service).bus)).get(body.request_id)
    # Another tenant's answer is reported exactly like a missing one: its existence is not ours to reveal.
    if generation is None or generation.tenant != tenant:
        raise ApiError(
            404,
            f"unknown request_id {body.request_id!r}: rate the `id` of a completed chat completion of this tenant",
            code="request_not_found",
            param="request_id",
        )
    feedback = FeedbackSubmitted(
        tenant=tenant,
        feedback_id=new_id(),
        request_id=body.request_id,
        rating=body.rating,
        comment=body.comment,
        correction=body.correction,
    )
    await publish(service, feedback, event_id=feedback.feedback_id, traceparent=traceparent)
    log.info("feedback_submitted", request_id=body.request_id, feedback_id=feedback.feedback_id, rating=body.rating)
    return FeedbackReceipt(feedback_id=feedback.feedback_id, request_id=body.request_id)
