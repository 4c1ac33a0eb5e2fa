"""Monitor service wiring: subscriptions to every stream's subjects, Prometheus metrics and /stats."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg
from prometheus_client import Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gyre_contracts import (
    DocumentIndexed,
    EnvelopeError,
    EvaluationCompleted,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    decode_event,
)
from gyre_monitor.stats import EventStats, Observation
from gyre_runtime.bus.topology import STREAMS
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service, run_service

log = get_logger()

EVENTS = Counter(
    "gyre_events_total", "Events seen on the bus, by CloudEvents type (evaluation runs' generations apart).", ["type"]
)
GENERATION_FAILURES = Counter(
    "gyre_generation_failures_total", "User generations that failed, by GenerationFailed code.", ["code"]
)
GENERATION_TOKENS = Counter("gyre_generation_tokens_total", "Tokens of user generations.", ["kind"])
GROUNDING = Counter("gyre_grounding_total", "User answers by grounding action.", ["action"])
EVALUATION_GENERATIONS = Counter(
    "gyre_evaluation_generations_total", "Generations of evaluation runs, by outcome.", ["outcome"]
)
EVALUATIONS = Counter("gyre_evaluations_total", "Evaluation runs, by outcome.", ["outcome"])
# Per golden set: a dashboard follows each set's quality over runs (set names are few, set by operators).
EVALUATION_METRICS = Gauge(
    "gyre_evaluation_metric", "The last completed evaluation's metrics, by golden set.", ["set_name", "metric"]
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
HISTOGRAMS = {
    "submit_to_indexed": Histogram(
        "gyre_submit_to_indexed_seconds", "From DocumentSubmitted to DocumentIndexed.", buckets=LATENCY_BUCKETS
    ),
    "retrieval": Histogram("gyre_retrieval_seconds", "Retrieval time of a generation.", buckets=LATENCY_BUCKETS),
    "time_to_first_token": Histogram(
        "gyre_time_to_first_token_seconds", "Generation start to first token.", buckets=LATENCY_BUCKETS
    ),
    "generation_total": Histogram(
        "gyre_generation_seconds", "Whole generation, retrieval included.", buckets=LATENCY_BUCKETS
    ),
}
# Only these are decoded (latencies, purpose, failure code, evaluation results); every other message is
# counted from its ce-type header alone.
DECODED: dict[str, type[Event]] = {
    t.event_type(): t
    for t in (DocumentIndexed, GenerationRequested, GenerationCompleted, GenerationFailed, EvaluationCompleted)
}


def export(event_type: str, observation: Observation) -> None:
    """Add one event's observation to the Prometheus metrics."""
    if observation.evaluation_generation is not None:
        EVALUATION_GENERATIONS.labels(observation.evaluation_generation).inc()
        return
    EVENTS.labels(event_type).inc()
    for name, value_ms in observation.latencies_ms.items():
        HISTOGRAMS[name].observe(value_ms / 1000)
    for kind, tokens in observation.tokens.items():
        GENERATION_TOKENS.labels(kind).inc(tokens)
    if observation.failure_code is not None:
        GENERATION_FAILURES.labels(observation.failure_code).inc()
    if observation.grounding is not None:
        GROUNDING.labels(observation.grounding).inc()
    if observation.evaluation is not None:
        EVALUATIONS.labels(observation.evaluation).inc()
    for metric, value in observation.evaluation_metrics.items():
        EVALUATION_METRICS.labels(observation.evaluation_set, metric).set(value)


def create_app(settings: Settings) -> Any:
    stats = EventStats()

    async def on_message(msg: Msg) -> None:
        headers = msg.headers or {}
        event_type = headers.get("ce-type")
        if not event_type:
            return  # not a Gyre event (e.g. a KV write)
        event = None
        if event_type in DECODED:
            try:
                event = decode_event(msg.data, DECODED[event_type], headers)
            except EnvelopeError as exc:
                log.warning("undecodable_event", subject=msg.subject, error=str(exc))
        export(event_type, stats.observe(event_type, event))

    async def stats_view(request: Request) -> JSONResponse:
        return JSONResponse(stats.snapshot())

    service = Service("monitor", settings, routes=[Route("/stats", stats_view)])

    @service.on_start
    async def wire(svc: Service) -> None:
        # Every persisted event, from the streams' own subject table. Not `gyre.>`: that would also
        # deliver every streamed token to the monitor, work on the generation hot path for no figure.
        for spec in STREAMS:
            for subject in spec.subjects:
                svc.listen(subject, on_message)

    return service.asgi()


def main() -> None:
    run_service("monitor", create_app)
