"""Feedback's handler: FeedbackSubmitted -> FeedbackRecorded (personal data per tenant policy), or FeedbackRejected."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from nats.js.errors import NotFoundError

from gyre_contracts import FeedbackRejected, FeedbackSubmitted
from gyre_feedback.joining import join_feedback
from gyre_feedback.redaction import redact_feedback
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.tenants import TenantPolicies

log = get_logger()

FEEDBACK_STREAM = "GYRE_FEEDBACK"


@dataclass
class FeedbackHandler:
    generations: GenerationStore
    publisher: Publisher
    policies: TenantPolicies

    async def __call__(self, event: FeedbackSubmitted, ctx: MessageContext) -> None:
        policy = await self.policies.get(event.tenant)
        redacted = redact_feedback(event, policy.pii)
        event = redacted.feedback  # from here on only the redacted text exists
        generation = await self.generations.get(event.request_id)
        outcome = redacted.refusal or join_feedback(event, generation)
        if isinstance(outcome, str):
            await self.publisher.publish(
                FeedbackRejected(
                    tenant=event.tenant, feedback_id=event.feedback_id, request_id=event.request_id, reason=outcome
                ),
                event_id=derived_id("feedback-rejected", event.feedback_id),
            )
            log.info("feedback_rejected", request_id=event.request_id, tenant=event.tenant, reason=outcome,
                     pii_found=redacted.pii_found)
        else:
            await self.publisher.publish(outcome, event_id=derived_id("feedback-recorded", event.feedback_id))
            log.info("feedback_recorded", request_id=event.request_id, tenant=event.tenant, rating=event.rating,
                     pii_found=redacted.pii_found)
        if redacted.pii_found and policy.pii != "allow" and ctx.stream_sequence:
            # The submission as sent still holds the values: it leaves the bus once handled.
            with contextlib.suppress(NotFoundError):
                await self.publisher.bus.js.delete_msg(
                    self.publisher.bus.stream_name(FEEDBACK_STREAM), ctx.stream_sequence
                )
