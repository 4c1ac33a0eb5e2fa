"""Operational events: alerts raised by the monitor, dead letters raised by any service."""

from __future__ import annotations

import base64
import datetime as dt
from typing import ClassVar

import msgspec

from gyre_contracts.base import Event, utc_now
from gyre_contracts.limits import Count, Name, ServiceName


class Alert(Event, frozen=True, kw_only=True, tag="gyre.monitor.alert.v1"):
    subject: ClassVar[str] = "monitor.alert"
    name: Name
    severity: Name = "warning"
    message: str
    value: float = 0.0
    threshold: float = 0.0
    raised_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DeadLetter(Event, frozen=True, kw_only=True, tag="gyre.dlq.v1"):
    """A message a service gave up on, with everything needed to inspect and replay it.

    ``payload`` is base64 of the original bytes, or of their first part when the whole would not fit in
    one message of the bus (``payload_truncated``; ``payload_bytes`` is the original's size): such a
    letter says why the message failed but cannot be replayed as it is.
    """

    subject: ClassVar[str] = "dlq"
    service: ServiceName
    original_subject: Name
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    payload: str
    error: str
    attempts: Count
    dead_at: dt.datetime = msgspec.field(default_factory=utc_now)
    payload_truncated: bool = False
    payload_bytes: Count = 0  # 0: not recorded (letters written before the field existed)


# What a letter keeps of an error text and of each header value when it must shrink to fit.
CLIPPED_ERROR_CHARS = 4000
CLIPPED_HEADER_CHARS = 1024


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


def fit_dead_letter(letter: DeadLetter, max_body_bytes: int) -> DeadLetter:
    """``letter``, or a copy whose JSON body is at most ``max_body_bytes``: never a letter the bus refuses.

    A message near the bus's size limit grows by a third in base64, so its letter would not fit:
    the copy keeps the error (clipped), the headers (values clipped) and as much of the payload's
    start as fits, with ``payload_truncated`` set and ``payload_bytes`` the original size.
    """
    if len(msgspec.json.encode(letter)) <= max_body_bytes:
        return letter
    original = base64.b64decode(letter.payload)
    shrunk = msgspec.structs.replace(
        letter,
        payload="",
        error=_clip(letter.error, CLIPPED_ERROR_CHARS),
        headers={name: _clip(value, CLIPPED_HEADER_CHARS) for name, value in letter.headers.items()},
        payload_truncated=True,
        payload_bytes=letter.payload_bytes or len(original),
    )
    # Base64 needs no JSON escaping: every 4 characters of room carry 3 bytes of the payload.
    room = max_body_bytes - len(msgspec.json.encode(shrunk))
    kept = original[: max(room, 0) // 4 * 3]
    return msgspec.structs.replace(shrunk, payload=base64.b64encode(kept).decode("ascii"))
