"""Prometheus metric names shared by every process, defined once."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Seconds a handler may take: from a cached lookup to a document's extraction or a generation.
HANDLER_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

MESSAGES_HANDLED = Counter(
    "gyre_messages_handled_total", "Messages a service's handler finished, by outcome (ack, nak, dead_letter).",
    ["service", "event_type", "outcome"],
)  # fmt: skip
HANDLER_SECONDS = Histogram(
    "gyre_handler_seconds", "Time a handler took per message.", ["service", "event_type"], buckets=HANDLER_BUCKETS
)
