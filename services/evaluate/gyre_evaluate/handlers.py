"""Evaluate's handler: EvaluationRequested -> every golden item through the live pipeline -> metrics, verdict, report.

A run is resumable: each scored item is stored as it finishes (``EvaluationStore.put_item``), so a
redelivered request (the replica died, or was restarted) skips what is already scored. It always ends
in one EvaluationCompleted: ``completed`` with metrics, or ``failed`` with the reason (an unknown set
or label, the generate replicas gone, too many failed items) and never hangs: an item that gets no
word from generate within the pipeline's timeout ends the run when no generate replica answers.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gyre_contracts import EvaluationCompleted, EvaluationProgress, EvaluationRequested, SamplingParams
from gyre_evaluate.comparison import Comparison, Gate, GateResult, compare, judge
from gyre_evaluate.metrics import Costs, ItemScore, aggregate, score_item
from gyre_evaluate.pipeline import LiveAnswer, LivePipeline, PipelineUnavailable
from gyre_evaluate.report import comparison_chart, markdown_report, pick_worst_items
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.evaluations import EvaluationRun, EvaluationStore, GoldenSetStore, UnknownName, new_run
from gyre_runtime.state.golden_sets import GoldenItem
from gyre_runtime.state.prompts import PromptError, PromptRegistry

log = get_logger()

PROGRESS_EVERY = 5
# A run whose items fail this often (GenerationFailed, not refusals) is not measuring anything.
MAX_ERROR_SHARE = 0.2
# GenerationFailed codes that every other item would get too: the run ends at the first.
FAILS_EVERY_ITEM = frozenset({"unknown_model", "unknown_prompt_label"})
_score_decoder = msgspec.json.Decoder(ItemScore)

Embed = Callable[[Sequence[str]], npt.NDArray[np.float32]]


class RunFailed(RuntimeError):
    """The run cannot go on; the message is EvaluationCompleted's reason."""


@dataclass
class EvaluateHandler:
    pipeline: LivePipeline
    sets: GoldenSetStore
    runs: EvaluationStore
    prompts: PromptRegistry
    publisher: Publisher
    prompt_name: str = "rag-answer"
    default_top_k: int = 4
    default_max_tokens: int = 256
    embed: Embed | None = None
    concurrency: int = 2

    async def __call__(self, event: EvaluationRequested, ctx: MessageContext) -> None:
        # The consumer worker keeps the message in progress while this runs (minutes); a replica that
        # dies mid-run has it redelivered within the ack wait, and ``run`` resumes it.
        await self.run(event)

    async def run(self, event: EvaluationRequested) -> EvaluationRun:
        run = await self.runs.get(event.evaluation_id)
        if run is None:
            run = new_run(event)
        if run.status in ("completed", "failed"):
            return run  # a redelivery of a finished run: nothing to do
        run.attempts += 1
        run.status = "running"
        await self.runs.save(run)
        try:
            await self._run(event, run)
        except (RunFailed, UnknownName, PromptError, PipelineUnavailable) as exc:
            run.status, run.reason = "failed", str(exc)
            await self._finish(run)
            log.warning("evaluation_failed", evaluation_id=run.id, reason=run.reason)
        return run

    async def _run(self, event: EvaluationRequested, run: EvaluationRun) -> None:
        try:
            gate = Gate(floors=dict(event.floors)) if event.floors else Gate()
        except ValueError as exc:  # a publisher other than the gateway named a metric that does not exist
            raise RunFailed(f"invalid gate: {exc}") from exc
        version, items = await self.sets.get(event.tenant, event.set_name, event.set_version)
        run.set_version, run.total = version, len(items)
        await self.pipeline.generate_load()  # no generate replica: fail now, not after the first timeout
        template = await self.prompts.resolve(self.prompt_name, label=event.prompt_label or "production")
        run.prompt_version = template.ref
        baseline = await self._baseline(event, run) if event.baseline else None
        await self.runs.save(run)

        scored = {i: _score_decoder.decode(msgspec.json.encode(row["score"]))
                  for i, row in (await self.runs.items(run.id)).items()}
        run.done = len(scored)
        pending = [i for i in range(len(items)) if i not in scored]
        if scored:
            log.info("evaluation_resumed", evaluation_id=run.id, done=len(scored), pending=len(pending))
        semaphore = asyncio.Semaphore(max(1, self.concurrency))

        async def one(index: int) -> None:
            async with semaphore:
                score, answer = await self._item(event, items[index], template.no_answer_text)
                row = {"index": index, "score": msgspec.to_builtins(score), "error": answer.error,
                       "error_code": answer.error_code, "grounding": answer.grounding,
                       "model_version": answer.model_version, "prompt_version": answer.prompt_version,
                       "citations": [c.document_id for c in answer.citations]}
                await self.runs.put_item(run.id, index, row)
                scored[index] = score
                run.done += 1
                if answer.error_code in FAILS_EVERY_ITEM:
                    raise RunFailed(f"generate refused the run's settings: {answer.error}")
                if answer.error:
                    run.errors += 1
                    if run.errors > max(3, MAX_ERROR_SHARE * run.total):
                        raise RunFailed(f"{run.errors} items failed in generate (last: {answer.error})")
                if answer.model_version:
                    run.model_version = answer.model_version
                if run.done % PROGRESS_EVERY == 0 or run.done == run.total:
                    await self._progress(run, run.done)

        tasks = [asyncio.create_task(one(i)) for i in pending]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        scores = [scored[i] for i in range(len(items))]
        run.metrics = aggregate(scores)
        comparison = None
        if baseline is not None:
            baseline_run, baseline_scores = baseline
            comparison = compare(baseline_scores, scores)
            run.comparison = [msgspec.to_builtins(m) for m in comparison.metrics]
            verdict = judge(run.metrics, gate, baseline_run.metrics)
            run.passed, run.gate_failures = verdict.passed, list(verdict.failures)
        elif event.floors:
            verdict = judge(run.metrics, gate)
            run.passed, run.gate_failures = verdict.passed, list(verdict.failures)
        run.status = "completed"
        await self._store_results(run, items, scores, comparison)
        await self._finish(run)
        log.info("evaluation_completed", evaluation_id=run.id, items=run.total, errors=run.errors,
                 passed=run.passed, metrics={k: round(v, 3) for k, v in run.metrics.items()})

    async def _baseline(self, event: EvaluationRequested, run: EvaluationRun) -> tuple[EvaluationRun, list[ItemScore]]:
        baseline = await self.runs.get(event.baseline)
        if baseline is None or baseline.tenant != event.tenant:
            raise UnknownName(f"unknown baseline evaluation {event.baseline!r}")
        if baseline.status != "completed":
            raise RunFailed(f"baseline evaluation {event.baseline!r} is {baseline.status}, not completed")
        if baseline.set_name != event.set_name:
            raise RunFailed(
                f"baseline evaluation {event.baseline!r} ran set {baseline.set_name!r}, not {event.set_name!r}"
            )
        rows = await self.runs.results(baseline)
        return baseline, [_score_decoder.decode(msgspec.json.encode(row["score"])) for row in rows]

    def _sampling(self, event: EvaluationRequested) -> SamplingParams:
        if event.sampling is not None:
            return event.sampling
        return SamplingParams(max_tokens=self.default_max_tokens, temperature=0.0)

    async def _item(
        self, event: EvaluationRequested, item: GoldenItem, no_answer_text: str
    ) -> tuple[ItemScore, LiveAnswer]:
        mode = event.retrieval.mode if event.retrieval else "hybrid"
        top_k = event.retrieval.top_k if event.retrieval else self.default_top_k
        params = self._sampling(event)
        # The retrieval metrics come from the same call generate makes (same question, mode, and at least
        # top_k): its ranking, and the full text of the chunks an answer's sources point at (a
        # citation carries only an excerpt) for groundedness.
        retrieved = await self.pipeline.retrieve(event.tenant, item.question, mode, max(top_k, 10)) if top_k else []
        hits = [(chunk.document_id, chunk.chunk_id) for chunk in retrieved]
        texts = {chunk.chunk_id: chunk.text for chunk in retrieved}
        answer = await self.pipeline.answer(
            event.tenant, item.question, prompt_label=event.prompt_label, params=params, mode=mode, top_k=top_k,
            model=event.model,
        )
        sources = [(c.number, c.document_id, c.chunk_id, texts.get(c.chunk_id, c.excerpt)) for c in answer.sources]
        score = await asyncio.to_thread(
            score_item,
            item_id=item.id, question=item.question, answer=answer.text, reference=item.answer or None,
            must_include=item.must_include, relevant=item.relevant, answerable=item.answerable,
            finish_reason=answer.finish_reason or None, max_tokens=params.max_tokens, hits=hits,
            citations=sources, no_answer_text=no_answer_text,
            costs=Costs(ttft_ms=answer.ttft_ms, total_ms=answer.total_ms, prompt_tokens=answer.prompt_tokens,
                        completion_tokens=answer.completion_tokens, cpu_s=answer.cpu_s),
            embed=self.embed, k=top_k,
        )
        return score, answer

    async def _progress(self, run: EvaluationRun, done: int) -> None:
        """Report ``done`` items (counted before this call's awaits: other items finish meanwhile)."""
        errors = run.errors
        await self.runs.save(run)
        await self.publisher.publish(
            EvaluationProgress(tenant=run.tenant, evaluation_id=run.id, done=done, total=run.total, errors=errors),
            event_id=derived_id("evaluation-progress", run.id, str(done)),
        )

    async def _store_results(
        self, run: EvaluationRun, items: Sequence[GoldenItem], scores: Sequence[ItemScore],
        comparison: Comparison | None,
    ) -> None:
        rows = await self.runs.items(run.id)
        lines = []
        for index, item in enumerate(items):
            row = dict(rows.get(index, {}))
            row.update(item_id=item.id, index=index, score=msgspec.to_builtins(scores[index]))
            lines.append(msgspec.json.encode(row))
        run.results_object = f"{run.id}/results.jsonl"
        await self.runs.put_object(run.results_object, b"\n".join(lines) + b"\n")
        summary: dict[str, Any] = {
            "id": run.id, "set": run.set_name, "set_version": run.set_version, "tenant": run.tenant,
            "prompt_version": run.prompt_version, "model_version": run.model_version, "settings": run.settings,
            "baseline": run.baseline, "errors": run.errors,
        }
        gate = None if run.passed is None else GateResult(passed=run.passed, failures=list(run.gate_failures))
        report = markdown_report(summary, run.metrics, gate_result=gate, comparison=comparison,
                                 worst_items=pick_worst_items(scores))
        run.report_object = f"{run.id}/report.md"
        await self.runs.put_object(run.report_object, report.encode())
        if comparison is not None:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "comparison.png"
                await asyncio.to_thread(comparison_chart, comparison, path)
                run.chart_object = f"{run.id}/comparison.png"
                await self.runs.put_object(run.chart_object, path.read_bytes())
        await self.runs.drop_items(run.id, len(items))

    async def _finish(self, run: EvaluationRun) -> None:
        await self.runs.save(run)
        await self.publisher.publish(
            EvaluationCompleted(
                tenant=run.tenant, evaluation_id=run.id, set_name=run.set_name, set_version=run.set_version,
                status="completed" if run.status == "completed" else "failed", reason=run.reason,
                metrics=run.metrics, baseline=run.baseline, passed=run.passed,
                gate_failures=tuple(run.gate_failures), items=run.total, results_object=run.results_object,
                prompt_version=run.prompt_version, model_version=run.model_version,
            ),
            event_id=derived_id("evaluation-completed", run.id),
        )
