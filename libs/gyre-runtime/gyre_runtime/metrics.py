"""Prometheus metric names shared by every process, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_HANDLED = Counter(
    "gyre_messages_handled_total",
    "Messages a service's handler finished, by outcome (ack, nak, dead_letter).",
    ["service", "event_type", "outcome"],
)
HANDLER_SECONDS = Histogram(
    "gyre_handler_seconds",
    "Time a handler took per message.",
    ["service", "event_type"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
