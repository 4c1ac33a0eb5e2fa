"""Generate's handler: GenerationRequested -> retrieve -> prompt -> TokenDelta stream -> GenerationCompleted."""

from __future__ import annotations

import time
from dataclasses import dataclass

import nats.errors

from gyre_contracts import (
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResult,
    Timings,
    TokenDelta,
    Usage,
    cloudevent_headers,
    decode_event,
    encode_body,
)
from gyre_generate.prompting import PROMPT_VERSION, build_prompt, citations_for, last_user_message
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.generation import GenerationParams, Generator
from gyre_runtime.logging import get_logger
from gyre_runtime.state.generations import GenerationStore

log = get_logger()


class RetrievalError(RuntimeError):
    pass


@dataclass
class GenerateHandler:
    generator: Generator
    publisher: Publisher
    generations: GenerationStore
    retrieve_timeout_s: float = 30.0
    max_prompt_tokens: int = 1536

    async def _retrieve(self, event: GenerationRequested, question: str) -> tuple[list[RetrievedChunk], float]:
        bus = self.publisher.bus
        request = RetrieveRequest(tenant=event.tenant, query=question, top_k=event.top_k, request_id=event.request_id)
        try:
            reply = await bus.nc.request(
                bus.subject("retrieve"), encode_body(request), timeout=self.retrieve_timeout_s,
                headers=cloudevent_headers(request, source=self.publisher.source),
            )
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError) as exc:
            raise RetrievalError(f"retrieval unavailable: {type(exc).__name__}") from exc
        result = decode_event(reply.data, RetrieveResult)
        if result.error:
            raise RetrievalError(f"retrieval failed: {result.error}")
        return list(result.hits), result.retrieval_ms

    async def __call__(self, event: GenerationRequested, ctx: MessageContext) -> None:
        started = time.perf_counter()
        stream_subject = f"generate.stream.{event.request_id}"
        question = last_user_message(event.messages)
        try:
            hits, retrieval_ms = (await self._retrieve(event, question)) if event.retrieval else ([], 0.0)
        except RetrievalError as exc:
            await self._fail(event, str(exc), stream_subject)
            return
        p = event.params
        budget = min(self.max_prompt_tokens, self.generator.context_length - p.max_tokens)
        prompt = build_prompt(event.messages, hits, self.generator.count_tokens, budget)
        params = GenerationParams(
            max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k, seed=p.seed,
            stop=tuple(p.stop),
        )
        stream = self.generator.stream(prompt.messages, params)
        pieces: list[str] = []
        first_token_at: float | None = None
        async for delta in stream:
            if first_token_at is None:
                first_token_at = time.perf_counter()
            await self.publisher.emit(
                TokenDelta(tenant=event.tenant, request_id=event.request_id, index=len(pieces), text=delta),
                subject=stream_subject,
            )
            pieces.append(delta)
        done = time.perf_counter()
        completed = GenerationCompleted(
            tenant=event.tenant, request_id=event.request_id, question=question, answer="".join(pieces),
            citations=citations_for(prompt.sources),
            usage=Usage(
                prompt_tokens=stream.prompt_tokens, completion_tokens=stream.completion_tokens,
                total_tokens=stream.prompt_tokens + stream.completion_tokens,
            ),
            timings=Timings(
                retrieval_ms=retrieval_ms,
                time_to_first_token_ms=((first_token_at or done) - started) * 1000,
                total_ms=(done - started) * 1000,
            ),
            finish_reason=stream.finish_reason or "stop", model_version=self.generator.version,
            prompt_version=PROMPT_VERSION,
        )
        # The record first, so feedback on this answer can be joined as soon as the client sees it.
        await self.generations.put(completed)
        await self.publisher.emit(completed, subject=stream_subject)
        await self.publisher.publish(completed, event_id=derived_id("completed", event.request_id))
        log.info("generation_completed", request_id=event.request_id, tenant=event.tenant,
                 tokens=stream.completion_tokens, total_ms=round(completed.timings.total_ms, 1))

    async def _fail(self, event: GenerationRequested, error: str, stream_subject: str) -> None:
        failed = GenerationFailed(tenant=event.tenant, request_id=event.request_id, error=error)
        await self.publisher.emit(failed, subject=stream_subject)
        await self.publisher.publish(failed, event_id=derived_id("failed", event.request_id))
        log.warning("generation_failed", request_id=event.request_id, error=error)
