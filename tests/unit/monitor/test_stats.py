"""The monitor's counts and latency percentiles."""

from __future__ import annotations

import datetime as dt

from gyre_contracts import DocumentIndexed, GenerationCompleted, Timings, Usage
from gyre_monitor.stats import EventStats, percentile


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
    assert stats.observe(indexed.event_type(), indexed) == {"submit_to_indexed": 250.0}
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
