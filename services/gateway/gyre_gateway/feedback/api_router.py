"""HTTP route of the feedback endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import FeedbackTenant
from gyre_gateway.feedback.protocol import FeedbackCreate, FeedbackReceipt
from gyre_gateway.feedback.serving import submit_feedback
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/feedback", status_code=202, response_model=FeedbackReceipt)
async def feedback(body: FeedbackCreate, tenant: FeedbackTenant, request: Request) -> FeedbackReceipt:
    """Rate an answer (by its chat completion `id`), optionally with a comment or a correction."""
    return await submit_feedback(service_of(request), tenant, body, traceparent=traceparent_of(request))
