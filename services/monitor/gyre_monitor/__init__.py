"""The monitor service: watches every event, exports Prometheus metrics and a JSON summary."""
