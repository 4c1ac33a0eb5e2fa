"""Monitor service wiring: subscriptions to every stream's subjects, Prometheus metrics and /stats."""

from __future__ import annotations

from typing import Any

from nats.aio.msg import Msg
from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gyre_contracts import DocumentIndexed, EnvelopeError, GenerationCompleted, decode_event
from gyre_monitor.stats import EventStats
from gyre_runtime.bus.topology import STREAMS
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service, run_service

log = get_logger()

EVENTS = Counter("gyre_events_total", "Events seen on the bus, by CloudEvents type.", ["type"])
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
# Only these are decoded; every other message is counted from its ce-type header alone.
DECODED = {DocumentIndexed.event_type(): DocumentIndexed, GenerationCompleted.event_type(): GenerationCompleted}


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
        EVENTS.labels(event_type).inc()
        for name, value_ms in stats.observe(event_type, event).items():
            HISTOGRAMS[name].observe(value_ms / 1000)

    async def stats_view(request: Request) -> JSONResponse:
        return JSONResponse(stats.snapshot())

    service = Service("monitor", settings, routes=[Route("/stats", stats_view)])

    @service.on_start
    async def wire(svc: Service) -> None:
        # Every persisted event, from the streams' own subject table. Not `gyre.>`: that would also
        # deliver every streamed token to the monitor, work on the generation hot path for no figure.
        for spec in STREAMS:
            for subject in spec.subjects:
                await svc.bus.nc.subscribe(svc.bus.subject(subject), cb=on_message)

    return service.asgi()


def main() -> None:
    run_service("monitor", create_app)
