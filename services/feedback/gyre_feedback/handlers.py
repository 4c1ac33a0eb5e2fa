"""Feedback's handler: FeedbackSubmitted -> FeedbackRecorded, or FeedbackRejected with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from gyre_contracts import FeedbackRejected, FeedbackSubmitted
from gyre_feedback.joining import join_feedback
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.generations import GenerationStore

log = get_logger()


@dataclass
class FeedbackHandler:
    generations: GenerationStore
    publisher: Publisher

    async def __call__(self, event: FeedbackSubmitted, ctx: MessageContext) -> None:
        generation = await self.generations.get(event.request_id)
        outcome = join_feedback(event, generation)
        if isinstance(outcome, str):
            await self.publisher.publish(
                FeedbackRejected(
                    tenant=event.tenant, feedback_id=event.feedback_id, request_id=event.request_id, reason=outcome
                ),
                event_id=derived_id("feedback-rejected", event.feedback_id),
            )
            log.info("feedback_rejected", request_id=event.request_id, tenant=event.tenant, reason=outcome)
            return
        await self.publisher.publish(outcome, event_id=derived_id("feedback-recorded", event.feedback_id))
        log.info("feedback_recorded", request_id=event.request_id, tenant=event.tenant, rating=event.rating)
