"""Publishing many events at once from a test or a benchmark: JetStream's async publish, acks gathered."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from nats.js import api as js_api

from gyre_contracts import Event, cloudevent_headers, encode_body
from gyre_contracts.schema import event_subject
from gyre_runtime.bus.connection import Bus


async def publish_many(
    bus: Bus, events: Iterable[tuple[Event, str | None]], source: str = "gyre/test"
) -> list[js_api.PubAck]:
    """Publish (event, event_id) pairs without waiting for each ack; a repeated id is dropped as a duplicate."""
    futures = []
    for event, event_id in events:
        headers = cloudevent_headers(event, source=source, event_id=event_id)
        subject = bus.subject(event_subject(event))
        futures.append(await bus.js.publish_async(subject, encode_body(event), headers=headers))
    return list(await asyncio.gather(*futures))
