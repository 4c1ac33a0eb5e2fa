"""Asking another service over core NATS request/reply, typed: one event out, one event type back.

Every caller (the gateway, generate's retrieval, evaluate's live pipeline) goes through
:func:`request`, so each failure has one type and one message: nobody answers, nobody answered in
time, the connection is gone, or the reply is not the event expected. An unreadable reply is a
failure of that call (``BadReply``), never something a consumer's retry could fix.
"""

from __future__ import annotations

from typing import TypeVar

import nats.errors

from gyre_contracts import EnvelopeError, Event, cloudevent_headers, decode_event, encode_body
from gyre_runtime.bus.connection import Bus

R = TypeVar("R", bound=Event)


class RequestFailed(Exception):
    """A request got no usable reply; ``subject`` is where it was sent."""

    def __init__(self, subject: str, message: str) -> None:
        super().__init__(message)
        self.subject = subject


class NoResponder(RequestFailed):
    """No replica listens on the subject (the service is not running)."""


class RequestTimeout(RequestFailed):
    """Replicas listen, but none answered within the timeout."""


class BusClosed(RequestFailed):
    """This process's connection to the bus is closed."""


class BadReply(RequestFailed):
    """The reply could not be decoded as the expected event type."""


async def request(
    bus: Bus, event: Event, reply_type: type[R], *, source: str, timeout_s: float, traceparent: str | None = None
) -> R:
    """Send ``event`` on its subject and decode the one reply as ``reply_type``."""
    subject = bus.subject(event.subject)
    headers = cloudevent_headers(event, source=source, traceparent=traceparent, deduplicate=False)
    try:
        msg = await bus.nc.request(subject, encode_body(event), timeout=timeout_s, headers=headers)
    except nats.errors.NoRespondersError as exc:
        raise NoResponder(subject, f"no replica listens on {subject}") from exc
    except nats.errors.TimeoutError as exc:
        raise RequestTimeout(subject, f"no reply within {timeout_s:g}s on {subject}") from exc
    except nats.errors.ConnectionClosedError as exc:
        raise BusClosed(subject, "the connection to the event bus is closed") from exc
    try:
        return decode_event(msg.data, reply_type, dict(msg.headers or {}))
    except EnvelopeError as exc:
        raise BadReply(subject, f"unreadable reply from {subject}: {exc}") from exc
