"""Generate's handlers: GenerationRequested -> checks -> retrieve -> prompt -> guarded TokenDelta stream -> result.

Every request ends in exactly one GenerationCompleted or GenerationFailed, on the request's stream
subject (for the gateway) and on JetStream (for feedback, improve, monitor):

- refused (input too long, parameters out of range, unknown prompt label, retrieval or model
  failure, request expired): GenerationFailed saying why;
- a blocked term in the question: the fixed refusal text, finish_reason ``content_filter``;
- nothing relevant retrieved: the template's no-answer text, no citations, the model not called;
- cancelled (``gyre.generate.cancel.<request_id>``): GenerationCompleted with finish_reason
  ``cancelled``, the partial answer and the tokens spent (they cost as much as any);
- otherwise the model's answer, guarded (personal data and blocked terms replaced), with citations.

The answer's text goes out coalesced (``delta_coalescer.py``): the first piece at once, then at most
one TokenDelta per ``DELTA_INTERVAL_S``, each carrying whatever the model produced meanwhile. The
message stays in progress while the request runs: the bus consumer sends its heartbeats.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

from nats.aio.msg import Msg

from gyre_contracts import (
    EnvelopeError,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoad,
    GenerationRequested,
    Grounding,
    SamplingParams,
    TokenDelta,
    Usage,
    decode_event,
    utc_now,
)
from gyre_contracts.generate import FailureCode
from gyre_generate.answer import Answer, Clock, citation_numbers_in, passages_of, words_of
from gyre_generate.answer_check import CheckedAnswer, check_answer
from gyre_generate.delta_coalescer import DELTA_INTERVAL_MAX_S, DELTA_INTERVAL_S, DELTA_MAX_CHARS, DeltaCoalescer
from gyre_generate.limits import (
    RequestRefused,
    check_fits_context,
    check_input_length,
    generation_params,
)
from gyre_generate.prompting import (
    Prompt,
    build_prompt,
    citations_for,
    fixed_prompt_tokens,
    last_user_message,
    template_text,
)
from gyre_generate.retrieval import Retrieval, RetrievalError, Retriever, is_relevant
from gyre_generate.running import Run, RunningGenerations
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.generation import Generator
from gyre_runtime.grounding import is_refusal, loop_start, question_coverage
from gyre_runtime.guardrails.answers import AnswerGuard
from gyre_runtime.guardrails.blocked_terms import BlockedTerms
from gyre_runtime.logging import get_logger
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.prompts import PromptError, PromptRegistry, PromptTemplate
from gyre_runtime.state.tenants import TenantPolicies

log = get_logger()

BLOCKED_QUESTION_ANSWER = "I can't answer that: the question contains a term this service does not respond to."
# How often (in model pieces) the stream is looked at for a loop: the check is linear in the answer.
LOOP_CHECK_EVERY = 8


@dataclass
class GenerateHandler:
    generator: Generator
    publisher: Publisher
    generations: GenerationStore
    prompts: PromptRegistry
    tenants: TenantPolicies
    retriever: Retriever
    running: RunningGenerations
    prompt_name: str = "rag-answer"
    model_name: str = ""  # the model's id in the registry (its version is the generator's)
    min_score: float = 0.2
    blocked: BlockedTerms = field(default_factory=BlockedTerms)
    max_input_tokens: int = 2048
    max_source_tokens: int = 1536
    expire_after_s: float = 120.0
    delta_interval_s: float = DELTA_INTERVAL_S
    delta_interval_max_s: float = DELTA_INTERVAL_MAX_S
    delta_max_chars: int = DELTA_MAX_CHARS

    # -- the request ------------------------------------------------------------------------

    async def __call__(self, event: GenerationRequested, ctx: MessageContext) -> None:
        clock = Clock()
        async with self.running.track(event.request_id, event.tenant) as run:
            try:
                guard = await self._guard(event.tenant)
                answer = await self._answer(event, run, clock, guard)
            except RequestRefused as exc:
                await self._fail(event, str(exc), exc.code)
                return
            except PromptError as exc:
                await self._fail(event, str(exc), "unknown_prompt_label")
                return
            except RetrievalError as exc:
                await self._fail(event, str(exc), "retrieval_unavailable")
                return
        await self._complete(event, answer, clock, guard)

    async def _answer(self, event: GenerationRequested, run: Run, clock: Clock, guard: AnswerGuard) -> Answer:
        waited_s = (utc_now() - event.requested_at).total_seconds()
        if waited_s > self.expire_after_s:
            raise RequestRefused(
                f"expired: the request waited {waited_s:.0f}s before a generate replica took it, longer than a "
                f"client waits ({self.expire_after_s:g}s, GYRE_REQUEST_TIMEOUT_S); send it again",
                "expired",
            )
        self._check_model(event)
        count = self.generator.count_tokens
        check_input_length(event.messages, count, self.max_input_tokens)
        template = await self.prompts.resolve(self.prompt_name, label=event.prompt_label or "production")
        params = generation_params(event.params, self.generator.context_length)
        fixed = fixed_prompt_tokens(template_text(template), event.messages, count)
        check_fits_context(fixed, params.max_tokens, self.generator.context_length)
        if run.cancelled:
            return Answer("", "cancelled", template.ref)
        if self.blocked.found("\n".join(m.content for m in event.messages if m.role != "assistant")):
            log.info("question_refused_blocked_term", request_id=event.request_id, tenant=event.tenant)
            return await self._fixed(event, BLOCKED_QUESTION_ANSWER, template, "content_filter", ("blocked_term",))
        budget = self.generator.context_length - params.max_tokens
        min_score = self.min_score if template.min_relevance is None else template.min_relevance
        retrieval = await self._retrieve(event, min_score) if event.retrieval and event.top_k > 0 else None
        if retrieval is not None:
            clock.retrieval_ms = retrieval.retrieval_ms
            if not is_relevant(retrieval, min_score):
                log.info("nothing_relevant", request_id=event.request_id, best=retrieval.best_similarity)
                return await self._fixed(event, template.no_answer_text, template, "stop")
            coverage = question_coverage(last_user_message(event.messages), passages_of(retrieval.hits))
            if coverage < template.min_question_coverage:
                log.info("question_not_covered", request_id=event.request_id, coverage=round(coverage, 2))
                return await self._fixed(event, template.no_answer_text, template, "stop")
        prompt = build_prompt(
            template, event.messages, retrieval.hits if retrieval else None, count,
            budget_tokens=budget, max_source_tokens=self.max_source_tokens,
        )
        flagged = ("injection_flagged",) if prompt.flagged else ()
        if prompt.flagged:
            log.warning("injection_flagged", request_id=event.request_id, tenant=event.tenant,
                        chunks=[c.chunk_id for c in prompt.flagged])
        if retrieval is not None and not prompt.sources:
            return await self._fixed(event, template.no_answer_text, template, "stop", flagged)
        if run.cancelled:
            return Answer("", "cancelled", template.ref, guardrails=flagged)
        return await self._generate(event, run, clock, guard, template, prompt, params, flagged)

    def _check_model(self, event: GenerationRequested) -> None:
        """An evaluation measures the model it names: one this replica does not serve is refused.

        A user's ``model`` is left alone: OpenAI clients send a model name of their own ("gpt-4o") and
        get the served model, as from any single-model server.
        """
        if event.purpose != "evaluation" or not event.model:
            return
        served = self.generator.version
        if event.model in (self.model_name, served) or served.startswith(f"{event.model}:"):
            return
        raise RequestRefused(
            f"unknown model {event.model!r}: this generate replica serves {self.model_name or served} ({served})",
            "unknown_model",
        )

    async def _retrieve(self, event: GenerationRequested, min_score: float) -> Retrieval:
        question = last_user_message(event.messages)
        return await self.retriever.retrieve(
            event.tenant, question, event.top_k, event.request_id, min_score=min_score,
            mode=event.retrieval_mode,
        )

    async def _guard(self, tenant: str) -> AnswerGuard:
        """Personal data is redacted from answers unless the tenant's policy allows it in documents."""
        policy = await self.tenants.get(tenant)
        return AnswerGuard(redact_pii=policy.pii != "allow", blocked=self.blocked)

    # -- producing the answer ---------------------------------------------------------------

    async def _emit(self, event: GenerationRequested, index: int, text: str) -> None:
        await self.publisher.emit(
            TokenDelta(tenant=event.tenant, request_id=event.request_id, index=index, text=text),
            subject=f"generate.stream.{event.request_id}",
        )

    async def _emit_words(self, event: GenerationRequested, text: str) -> None:
        """A whole text streamed word by word: a client shows it growing, as it shows a model's."""
        for index, piece in enumerate(words_of(text)):
            await self._emit(event, index, piece)

    async def _fixed(
        self, event: GenerationRequested, text: str, template: PromptTemplate, finish_reason: str,
        guardrails: tuple[str, ...] = (),
    ) -> Answer:
        """An answer that is not the model's (no-answer, refusal): streamed like one, nothing cited."""
        await self._emit_words(event, text)
        return Answer(text, finish_reason, template.ref, guardrails=guardrails)

    async def _generate(
        self, event: GenerationRequested, run: Run, clock: Clock, answer_guard: AnswerGuard,
        template: PromptTemplate, prompt: Prompt, params: SamplingParams, flagged: tuple[str, ...],
    ) -> Answer:
        """The model's answer. Without a grounding check it streams as it comes; with one, the answer is
        checked against the sources first and then streamed (what a client reads is what was checked)."""
        # The version the stream runs on: read with no await before stream(), so a hot swap cannot come between.
        model_version = self.generator.version
        stream = self.generator.stream(prompt.messages, params)
        deltas = DeltaCoalescer(partial(self._emit, event), self._delta_interval, self.delta_max_chars)
        checking = template.grounding == "check" and bool(prompt.sources)
        guard = answer_guard.streaming()
        pieces: list[str] = []
        looped = False

        async def read() -> None:
            nonlocal looped
            async for delta in stream:
                pieces.append(delta)
                if template.stop_on_loop and len(pieces) % LOOP_CHECK_EVERY == 0 and loop_start("".join(pieces)):
                    looped = True
                    break
                if not checking:
                    clock.token()
                    await deltas.add(guard.feed(delta))
            if looped:
                await stream.aclose()

        try:
            cancelled = await run.pump(stream, read())
        except Exception as exc:  # the backend failed: tell the client now rather than retry later
            deltas.discard()
            log.exception("generation_backend_failed", request_id=event.request_id)
            raise RequestRefused(f"the model failed: {type(exc).__name__}: {exc}", "model_failed") from exc
        except BaseException:  # the handler itself is stopped (service shutdown)
            deltas.discard()
            raise
        finish_reason = "cancelled" if cancelled else ("stop" if looped else (stream.finish_reason or "stop"))
        usage = {"prompt_tokens": stream.prompt_tokens, "completion_tokens": stream.completion_tokens}
        if not checking:
            # What is held goes out before GenerationCompleted: the streamed text is the whole answer.
            await deltas.close(guard.finish())
            result = guard.result
            numbers = None if template.grounding == "off" else citation_numbers_in(result.text, len(prompt.sources))
            return Answer(
                text=result.text, finish_reason=finish_reason, prompt_version=template.ref, **usage,
                model_version=model_version,
                citations=citations_for(prompt.sources, numbers), guardrails=flagged + result.acted,
                sources=citations_for(prompt.sources),
                grounding=Grounding(action="none", loop_cut=looped),
            )
        raw = "".join(pieces)
        cut = loop_start(raw) if looped else None
        raw = raw[:cut] if cut else raw
        if is_refusal(raw, template.no_answer_text):
            # The model says the sources do not answer: that is the no-answer text, not something to
            # replace with a quote (the check would find some sentence sharing a word with the question).
            checked = CheckedAnswer(text="", action="none", supported=0, total=0, cited=())
        else:
            checked = check_answer(
                last_user_message(event.messages), raw, prompt.source_texts, titles=[s.title for s in prompt.sources]
            )
        guarded = answer_guard.apply(checked.text or template.no_answer_text)
        deltas.discard()
        if not cancelled:
            clock.token()
            await self._emit_words(event, guarded.text)
        acted: tuple[str, ...] = (f"grounding_{checked.action}",) if checked.action in ("trimmed", "extractive") else ()
        acted += ("model_refused",) if not checked.text and checked.action == "none" else ()
        return Answer(
            text=guarded.text if not cancelled else "", finish_reason=finish_reason, prompt_version=template.ref,
            **usage, model_version=model_version,
            citations=citations_for(prompt.sources, checked.cited) if checked.text and not cancelled else (),
            guardrails=flagged + guarded.acted + acted + (("loop_stopped",) if looped else ()),
            sources=citations_for(prompt.sources),
            grounding=Grounding(
                action=checked.action, supported_sentences=checked.supported, checked_sentences=checked.total,
                loop_cut=looped,
            ),
        )

    def _delta_interval(self) -> float:
        """The least time between two TokenDeltas of one answer (see DELTA_INTERVAL_S)."""
        in_flight = max(1, self.running.in_flight)
        return min(self.delta_interval_s * in_flight, max(self.delta_interval_max_s, self.delta_interval_s))

    # -- results ----------------------------------------------------------------------------

    async def _complete(self, event: GenerationRequested, answer: Answer, clock: Clock, guard: AnswerGuard) -> None:
        # What is kept of the question passes the same guard as answers (records, datasets, logs).
        recorded = guard.apply(last_user_message(event.messages))
        guardrails = answer.guardrails + (("question_pii_redacted",) if recorded.pii else ())
        completed = GenerationCompleted(
            tenant=event.tenant, request_id=event.request_id, question=recorded.text, answer=answer.text,
            citations=answer.citations,
            usage=Usage(
                prompt_tokens=answer.prompt_tokens, completion_tokens=answer.completion_tokens,
                total_tokens=answer.prompt_tokens + answer.completion_tokens,
            ),
            timings=clock.timings(),
            finish_reason=answer.finish_reason, model_version=answer.model_version or self.generator.version,
            prompt_version=answer.prompt_version, guardrails=tuple(dict.fromkeys(guardrails)),
            purpose=event.purpose, grounding=answer.grounding, sources=answer.sources,
        )
        # The record first, so feedback on this answer can be joined as soon as the client sees it.
        await self.generations.put(completed)
        await self.publisher.emit(completed, subject=f"generate.stream.{event.request_id}")
        await self.publisher.publish(completed, event_id=derived_id("completed", event.request_id))
        log.info("generation_completed", request_id=event.request_id, tenant=event.tenant,
                 finish_reason=completed.finish_reason, tokens=answer.completion_tokens,
                 prompt_version=completed.prompt_version, guardrails=list(completed.guardrails),
                 total_ms=round(completed.timings.total_ms, 1))

    async def _fail(self, event: GenerationRequested, error: str, code: FailureCode = "") -> None:
        failed = GenerationFailed(
            tenant=event.tenant, request_id=event.request_id, error=error, code=code, purpose=event.purpose
        )
        await self.publisher.emit(failed, subject=f"generate.stream.{event.request_id}")
        await self.publisher.publish(failed, event_id=derived_id("failed", event.request_id))
        log.warning("generation_failed", request_id=event.request_id, tenant=event.tenant, error=error, code=code)


# -- core NATS: cancel requests and load questions ---------------------------------------------


@dataclass
class CancelHandler:
    """``gyre.generate.cancel.*``: every replica hears every cancel; the one running the request acts."""

    running: RunningGenerations

    async def __call__(self, msg: Msg) -> None:
        request_id = msg.subject.rsplit(".", 1)[-1]
        tenant, reason = "default", "cancelled"
        try:
            cancel = decode_event(msg.data, GenerationCancelRequested, dict(msg.headers or {}))
            request_id, tenant, reason = cancel.request_id or request_id, cancel.tenant, cancel.reason
        except EnvelopeError as exc:
            log.warning("cancel_undecodable", subject=msg.subject, error=str(exc))
            return
        if self.running.cancel(request_id, tenant, reason):
            log.info("generation_cancelled", request_id=request_id, tenant=tenant, reason=reason)


@dataclass
class LoadHandler:
    """``gyre.generate.load`` (queue group ``generate``): in flight here plus the shared backlog, and capacity."""

    running: RunningGenerations
    publisher: Publisher
    stream: str
    durable: str
    replica: str = ""

    async def queued(self) -> int:
        try:
            info = await self.publisher.bus.js.consumer_info(self.stream, self.durable)
        except Exception as exc:  # JetStream busy or restarting: report what this replica knows
            log.warning("load_backlog_unknown", error=f"{type(exc).__name__}: {exc}")
            return 0
        return int(info.num_pending or 0)

    async def load(self) -> GenerationLoad:
        queued = await self.queued()
        return GenerationLoad(
            in_flight=self.running.in_flight + queued, capacity=self.running.capacity, queued=queued,
            replica=self.replica,
        )

    async def __call__(self, msg: Msg) -> None:
        await self.publisher.reply(msg, await self.load())
