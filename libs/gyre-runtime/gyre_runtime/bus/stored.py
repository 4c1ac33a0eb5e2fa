"""Reading back what a stream holds: every stored event of one subject, oldest first (operators' tools)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from gyre_contracts import Event, decode_event
from gyre_runtime.bus.connection import Bus

E = TypeVar("E", bound=Event)


async def stored_events(bus: Bus, stream: str, event_type: type[E], *, timeout_s: float = 30.0) -> AsyncIterator[E]:
    """The events of ``event_type`` stored in ``stream`` (a topology name such as GYRE_EMBED), oldest first.

    Reads exactly what the stream held when called (an ordered, ephemeral consumer), so it ends.
    """
    subject = bus.subject(event_type.subject)
    info = await bus.js.stream_info(bus.stream_name(stream), subjects_filter=subject)
    total = (info.state.subjects or {}).get(subject, 0)
    if not total:
        return
    sub = await bus.js.subscribe(subject, ordered_consumer=True)
    try:
        for _ in range(total):
            msg = await sub.next_msg(timeout=timeout_s)
            yield decode_event(msg.data, event_type, dict(msg.headers or {}))
    finally:
        await sub.unsubscribe()
