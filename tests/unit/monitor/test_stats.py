"""The monitor's counts and latency percentiles."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from prometheus_client import REGISTRY

from gyre_contracts import (
    ChatMessage,
    DocumentIndexed,
    EvaluationCompleted,
    EvaluationProgress,
    EvaluationRequested,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    Grounding,
    Timings,
    Usage,
)
from gyre_contracts.generate import FailureCode
from gyre_monitor.app import export
from gyre_monitor.stats import EventStats, percentile

Purpose = Literal["user", "evaluation"]


def test_percentiles_of_sorted_samples() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) in (50.0, 51.0)
    assert percentile(values, 0.95) in (95.0, 96.0)
    assert percentile([], 0.5) == 0.0


def test_indexed_and_completed_events_feed_stage_latencies() -> None:
    stats = EventStats()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    indexed = DocumentIndexed(
        document_id="d", version=1, chunk_count=1, embedding_model="e", embed_ms=1.0,
        submitted_at=t0, indexed_at=t0 + dt.timedelta(milliseconds=250),
    )
    assert stats.observe(indexed.event_type(), indexed).latencies_ms == {"submit_to_indexed": 250.0}
    completed = GenerationCompleted(
        request_id="r", question="q", answer="a", usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        timings=Timings(retrieval_ms=5, time_to_first_token_ms=40, total_ms=900),
        model_version="m", prompt_version="p",
    )
    stats.observe(completed.event_type(), completed)
    stats.observe("gyre.feedback.recorded.v1")
    snap = stats.snapshot()
    assert snap["events"] == {
        "gyre.feedback.recorded.v1": 1, "gyre.generate.completed.v1": 1, "gyre.index.updated.v1": 1,
    }
    assert snap["latency"]["time_to_first_token"]["p50_ms"] == 40
    assert snap["latency"]["submit_to_indexed"]["count"] == 1


# ---------------------------------------------------------------- user and evaluation traffic


def requested(purpose: Purpose = "user") -> GenerationRequested:
    return GenerationRequested(request_id="r", messages=(ChatMessage(role="user", content="q"),), purpose=purpose)


def completed(
    purpose: Purpose = "user", *, tokens: tuple[int, int] = (10, 5), grounding: Grounding | None = None
) -> GenerationCompleted:
    return GenerationCompleted(
        request_id="r", question="q", answer="a",
        usage=Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1], total_tokens=sum(tokens)),
        timings=Timings(retrieval_ms=5, time_to_first_token_ms=40, total_ms=900),
        model_version="m", prompt_version="p", purpose=purpose, grounding=grounding,
    )


def failed(purpose: Purpose = "user", code: FailureCode = "model_failed") -> GenerationFailed:
    return GenerationFailed(request_id="r", error="boom", code=code, purpose=purpose)


def evaluation_done(
    evaluation_id: str, status: Literal["completed", "failed"] = "completed", **metrics: float
) -> EvaluationCompleted:
    return EvaluationCompleted(
        evaluation_id=evaluation_id, set_name="faq", set_version=3, status=status, metrics=metrics, items=20,
        passed=True if status == "completed" else None,
    )


def observe_all(stats: EventStats, *events: Event) -> None:
    for event in events:
        stats.observe(event.event_type(), event)


def test_an_evaluation_runs_generations_are_in_none_of_the_user_figures() -> None:
    stats = EventStats()
    observe_all(stats, requested("evaluation"), completed("evaluation"), failed("evaluation"))
    snap = stats.snapshot()
    assert snap["events"] == {} and snap["latency"] == {}
    assert snap["generation"] == {
        "requested": 0, "completed": 0, "failed": 0, "failures": {}, "tokens": {"prompt": 0, "completion": 0},
        "grounding": {},
    }
    assert snap["evaluation"]["generations"] == {"requested": 1, "completed": 1, "failed": 1}


def test_user_generations_count_requests_tokens_failures_by_code_and_grounding_actions() -> None:
    stats = EventStats()
    observe_all(
        stats,
        requested(), requested(), requested(),
        completed(tokens=(10, 5), grounding=Grounding(action="kept")),
        completed(tokens=(7, 3), grounding=Grounding(action="trimmed", supported_sentences=2, checked_sentences=3)),
        failed(code="retrieval_unavailable"),
        failed(code=""),  # a publisher older than the codes
        completed("evaluation", tokens=(100, 100), grounding=Grounding(action="extractive")),
    )
    snap = stats.snapshot()["generation"]
    assert (snap["requested"], snap["completed"], snap["failed"]) == (3, 2, 2)
    assert snap["failures"] == {"retrieval_unavailable": 1, "unknown": 1}
    assert snap["tokens"] == {"prompt": 17, "completion": 8}
    assert snap["grounding"] == {"kept": 1, "trimmed": 1}
    assert stats.snapshot()["latency"]["generation_total"]["count"] == 2


def test_an_undecoded_generate_event_counts_as_a_users() -> None:
    # Its purpose is unknown; the contract's default is "user", and hiding it would lose a user request.
    stats = EventStats()
    stats.observe(GenerationRequested.event_type(), None)
    assert stats.snapshot()["generation"]["requested"] == 1


def test_evaluation_runs_are_counted_by_outcome_and_the_last_completed_keeps_its_metrics() -> None:
    stats = EventStats()
    observe_all(
        stats,
        EvaluationRequested(evaluation_id="e1", set_name="faq"),
        EvaluationRequested(evaluation_id="e2", set_name="faq"),
        EvaluationRequested(evaluation_id="e3", set_name="faq"),
        EvaluationProgress(evaluation_id="e1", done=10, total=20),
        evaluation_done("e1", recall_at_k=0.5),
        evaluation_done("e2", recall_at_k=0.75, faithfulness=0.9),
        evaluation_done("e3", "failed"),  # a failed run has no metrics to keep: e2's stay
    )
    snap = stats.snapshot()["evaluation"]
    assert (snap["requested"], snap["completed"], snap["failed"]) == (3, 2, 1)
    last = snap["last_completed"]
    assert last["evaluation_id"] == "e2" and last["metrics"] == {"faithfulness": 0.9, "recall_at_k": 0.75}
    assert (last["set_name"], last["set_version"], last["items"], last["passed"]) == ("faq", 3, 20, True)
    assert stats.snapshot()["events"]["gyre.evaluate.progress.v1"] == 1


def test_no_completed_evaluation_yet_is_no_last_completed() -> None:
    assert EventStats().snapshot()["evaluation"]["last_completed"] is None


# ---------------------------------------------------------------- Prometheus


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_prometheus_counts_an_evaluation_generation_apart_from_the_bus_events() -> None:
    stats, event = EventStats(), failed("evaluation", code="model_failed")
    events_before = sample("gyre_events_total", type=event.event_type())
    failures_before = sample("gyre_generation_failures_total", code="model_failed")
    apart_before = sample("gyre_evaluation_generations_total", outcome="failed")
    export(event.event_type(), stats.observe(event.event_type(), event))
    assert sample("gyre_events_total", type=event.event_type()) == events_before
    assert sample("gyre_generation_failures_total", code="model_failed") == failures_before
    assert sample("gyre_evaluation_generations_total", outcome="failed") == apart_before + 1


def test_prometheus_counts_user_tokens_failures_grounding_and_evaluation_metrics() -> None:
    stats = EventStats()
    before = {
        "tokens": sample("gyre_generation_tokens_total", kind="completion"),
        "failures": sample("gyre_generation_failures_total", code="expired"),
        "grounding": sample("gyre_grounding_total", action="extractive"),
        "evaluations": sample("gyre_evaluations_total", outcome="completed"),
    }
    for event in (
        completed(tokens=(4, 6), grounding=Grounding(action="extractive")),
        failed(code="expired"),
        evaluation_done("e9", recall_at_k=0.625),
    ):
        export(event.event_type(), stats.observe(event.event_type(), event))
    assert sample("gyre_generation_tokens_total", kind="completion") == before["tokens"] + 6
    assert sample("gyre_generation_failures_total", code="expired") == before["failures"] + 1
    assert sample("gyre_grounding_total", action="extractive") == before["grounding"] + 1
    assert sample("gyre_evaluations_total", outcome="completed") == before["evaluations"] + 1
    assert sample("gyre_evaluation_metric", set_name="faq", metric="recall_at_k") == 0.625
