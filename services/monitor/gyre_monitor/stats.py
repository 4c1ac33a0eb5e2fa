"""What the monitor learns from the event flow: counts and stage latencies, with percentiles.

The user figures (``events``, ``latency``, ``generation``) are user traffic only: the generate events
of an evaluation run (``purpose="evaluation"``) would otherwise show a golden-set run as a burst of
user requests, with its own latencies and failures. They are counted apart, in ``evaluation``, with
the evaluation runs themselves.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeGuard

from gyre_contracts import (
    DocumentIndexed,
    EvaluationCompleted,
    EvaluationRequested,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
)

WINDOW = 10_000  # latest samples kept per latency, for percentiles in /stats

GENERATION_OUTCOMES = {
    GenerationRequested.event_type(): "requested",
    GenerationCompleted.event_type(): "completed",
    GenerationFailed.event_type(): "failed",
}
UNKNOWN_FAILURE_CODE = "unknown"  # GenerationFailed.code "" (a publisher older than the codes)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[rank]


GenerateEvent: TypeAlias = GenerationRequested | GenerationCompleted | GenerationFailed


def is_evaluation_traffic(event: Event | None) -> TypeGuard[GenerateEvent]:
    """A generate event sent for an evaluation run. An undecoded one counts as a user's: the default purpose."""
    return isinstance(event, GenerateEvent) and event.purpose == "evaluation"


@dataclass
class Observation:
    """What one event added, for the Prometheus side to add too."""

    # An evaluation run's generate event (requested, completed, failed): in none of the user figures.
    evaluation_generation: str | None = None
    latencies_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)  # "prompt", "completion"
    failure_code: str | None = None  # a user generation that failed
    grounding: str | None = None  # a user answer's grounding action
    evaluation: str | None = None  # an evaluation run's outcome: requested, completed, failed
    evaluation_set: str = ""  # a completed run's golden set, and its metrics
    evaluation_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class EventStats:
    counts: Counter[str] = field(default_factory=Counter)
    latencies_ms: dict[str, deque[float]] = field(default_factory=dict)
    failure_codes: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    grounding: Counter[str] = field(default_factory=Counter)
    evaluation_generations: Counter[str] = field(default_factory=Counter)
    evaluations: Counter[str] = field(default_factory=Counter)
    last_evaluation: EvaluationCompleted | None = None

    def _sample(self, name: str, value_ms: float) -> None:
        self.latencies_ms.setdefault(name, deque(maxlen=WINDOW)).append(value_ms)

    def observe(self, event_type: str, event: Event | None = None) -> Observation:
        """Count one event (``event``: decoded, when its type is one that carries figures)."""
        if is_evaluation_traffic(event):
            outcome = GENERATION_OUTCOMES[event.event_type()]
            self.evaluation_generations[outcome] += 1
            return Observation(evaluation_generation=outcome)
        self.counts[event_type] += 1
        observation = Observation()
        if isinstance(event, DocumentIndexed):
            observation.latencies_ms["submit_to_indexed"] = (
                event.indexed_at - event.submitted_at
            ).total_seconds() * 1000
        elif isinstance(event, GenerationCompleted):
            observation.latencies_ms["retrieval"] = event.timings.retrieval_ms
            observation.latencies_ms["time_to_first_token"] = event.timings.time_to_first_token_ms
            observation.latencies_ms["generation_total"] = event.timings.total_ms
            observation.tokens = {"prompt": event.usage.prompt_tokens, "completion": event.usage.completion_tokens}
            if event.grounding is not None:
                observation.grounding = event.grounding.action
        elif isinstance(event, GenerationFailed):
            observation.failure_code = event.code or UNKNOWN_FAILURE_CODE
        elif event_type == EvaluationRequested.event_type():
            observation.evaluation = "requested"  # its type says all: no need to decode it
        elif isinstance(event, EvaluationCompleted):
            observation.evaluation = event.status
            if event.status == "completed":
                self.last_evaluation = event
                observation.evaluation_set = event.set_name
                observation.evaluation_metrics = dict(event.metrics)
        self._add(observation)
        return observation

    def _add(self, observation: Observation) -> None:
        for name, value in observation.latencies_ms.items():
            self._sample(name, value)
        self.tokens.update(observation.tokens)
        if observation.failure_code is not None:
            self.failure_codes[observation.failure_code] += 1
        if observation.grounding is not None:
            self.grounding[observation.grounding] += 1
        if observation.evaluation is not None:
            self.evaluations[observation.evaluation] += 1

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
        return {
            "events": dict(sorted(self.counts.items())),
            "latency": latency,
            "generation": self._generation_snapshot(),
            "evaluation": self._evaluation_snapshot(),
        }

    def _generation_snapshot(self) -> dict[str, Any]:
        """User generations: requests, outcomes, failures by code, tokens, grounding actions."""
        return {
            "requested": self.counts[GenerationRequested.event_type()],
            "completed": self.counts[GenerationCompleted.event_type()],
            "failed": self.counts[GenerationFailed.event_type()],
            "failures": dict(sorted(self.failure_codes.items())),
            "tokens": {"prompt": self.tokens["prompt"], "completion": self.tokens["completion"]},
            "grounding": dict(sorted(self.grounding.items())),
        }

    def _evaluation_snapshot(self) -> dict[str, Any]:
        last = self.last_evaluation
        last_completed = None
        if last is not None:
            last_completed = {
                "evaluation_id": last.evaluation_id,
                "tenant": last.tenant,
                "set_name": last.set_name,
                "set_version": last.set_version,
                "items": last.items,
                "metrics": dict(sorted(last.metrics.items())),
                "passed": last.passed,
                "gate_failures": list(last.gate_failures),
                "prompt_version": last.prompt_version,
                "model_version": last.model_version,
                "completed_at": last.completed_at.isoformat(),
            }
        return {
            "requested": self.evaluations["requested"],
            "completed": self.evaluations["completed"],
            "failed": self.evaluations["failed"],
            "generations": {outcome: self.evaluation_generations[outcome] for outcome in GENERATION_OUTCOMES.values()},
            "last_completed": last_completed,
        }
