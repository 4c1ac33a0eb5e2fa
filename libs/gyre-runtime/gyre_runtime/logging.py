"""structlog JSON logs: one line per event, with the service name on every line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import msgspec
import structlog

_encoder = msgspec.json.Encoder()


def _serialize(obj: Any, **_: Any) -> bytes:
    # structlog passes default=...; msgspec's encoder takes no such argument.
    try:
        return _encoder.encode(obj)
    except TypeError:
        return _encoder.encode({k: str(v) for k, v in obj.items()})


def configure_logging(service: str, level: str = "info") -> structlog.stdlib.BoundLogger:
    """Route structlog and the stdlib's logging to JSON lines on stderr."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer(serializer=_serialize)],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.BytesLoggerFactory(sys.stderr.buffer),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # stdlib loggers (uvicorn, nats) through the same JSON renderer.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(serializer=lambda o, **_: _serialize(o).decode()),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.processors.EventRenamer("event")],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logger: structlog.stdlib.BoundLogger = structlog.get_logger()
    return logger


def get_logger(**bound: Any) -> Any:
    """A lazy logger: safe at import time, it picks up the configuration when first used."""
    return structlog.get_logger(**bound)
