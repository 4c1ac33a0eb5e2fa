"""Operational events: alerts raised by the monitor, dead letters raised by any service."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from gyre_contracts.base import Event, utc_now


class Alert(Event, frozen=True, kw_only=True, tag="gyre.monitor.alert.v1"):
    subject: ClassVar[str] = "monitor.alert"
    name: str
    severity: str = "warning"
    message: str
    value: float = 0.0
    threshold: float = 0.0
    raised_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DeadLetter(Event, frozen=True, kw_only=True, tag="gyre.dlq.v1"):
    """A message a service gave up on, with everything needed to inspect and replay it."""

    subject: ClassVar[str] = "dlq"
    service: str
    original_subject: str
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    payload: str  # base64 of the original bytes
    error: str
    attempts: int
    dead_at: dt.datetime = msgspec.field(default_factory=utc_now)
