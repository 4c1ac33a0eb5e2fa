"""Feedback's handler: FeedbackSubmitted -> FeedbackRecorded (personal data per tenant policy), or FeedbackRejected."""

from __future__ import annotations

from dataclasses import dataclass

import nats.errors
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
            await self._delete_submission(ctx.stream_sequence)

    async def _delete_submission(self, sequence: int) -> None:
        """The submission as sent still holds the values: it leaves the bus once handled.

        Best effort: the feedback is recorded either way, and the stream's age limit removes what
        could not be deleted here (the failure is logged).
        """
        bus = self.publisher.bus
        try:
            await bus.js.delete_msg(bus.stream_name(FEEDBACK_STREAM), sequence)
        except NotFoundError:
            pass  # aged out or deleted already
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("feedback_submission_not_deleted", sequence=sequence, error=f"{type(exc).__name__}: {exc}")
