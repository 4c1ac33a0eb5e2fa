"""What the monitor learns from the event flow: counts and stage latencies, with percentiles."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from gyre_contracts import DocumentIndexed, Event, GenerationCompleted

WINDOW = 10_000  # latest samples kept per latency, for percentiles in /stats


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[rank]


@dataclass
class EventStats:
    counts: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[str, deque[float]] = field(default_factory=dict)

    def _sample(self, name: str, value_ms: float) -> None:
        self.latencies_ms.setdefault(name, deque(maxlen=WINDOW)).append(value_ms)

    def observe(self, event_type: str, event: Event | None = None) -> dict[str, float]:
        """Count one event; returns the latencies (ms) it carried, by metric name."""
        self.counts[event_type] += 1
        samples: dict[str, float] = {}
        if isinstance(event, DocumentIndexed):
            samples["submit_to_indexed"] = (event.indexed_at - event.submitted_at).total_seconds() * 1000
        elif isinstance(event, GenerationCompleted):
            samples["retrieval"] = event.timings.retrieval_ms
            samples["time_to_first_token"] = event.timings.time_to_first_token_ms
            samples["generation_total"] = event.timings.total_ms
        for name, value in samples.items():
            self._sample(name, value)
        return samples

    def snapshot(self) -> dict[str, Any]:
        latency = {}
        for name, values in sorted(self.latencies_ms.items()):
            ordered = sorted(values)
            latency[name] = {
                "count": len(ordered),
                "mean_ms": sum(ordered) / len(ordered),
                "p50_ms": percentile(ordered, 0.5),
                "p95_ms": percentile(ordered, 0.95),
                "max_ms": ordered[-1],
            }
        return {"events": dict(sorted(self.counts.items())), "latency": latency}
