"""Events are re-validated where a service decodes them, on a real nats-server: a bad one is dead-lettered, never fatal.

A publisher that bypasses the gateway (any system may publish DocumentSubmitted) meets the same
limits as a gateway request; what breaks them lands in the dead-letter stream with the reason, and
the service goes on with the next message on the same connection.
"""

from __future__ import annotations

import asyncio
import base64

import msgspec
import pytest

from gyre_contracts import DocumentAccepted, DocumentSubmitted, decode_event
from gyre_ingest.app import create_app as create_ingest
from gyre_runtime.bus import topology
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from gyre_runtime.service import Service
from tests.support.models import EMBEDDER, built_models
from tests.support.services import read_dead_letters, running_app

DLQ_STREAM = "GYRE_DLQ"
WAIT_S = 30.0  # upper bound of any single wait


def ingest_subject(bus: Bus, tenant: str = "default") -> str:
    """The subject the ingest consumer reads submissions of ``tenant`` from (with or without a tenant token)."""
    spec = next(c for c in topology.CONSUMERS if c.durable == "ingest")
    return bus.subject(spec.filter_subjects[0].replace("*", tenant))


@pytest.mark.models  # the real ingest service counts chunk sizes with the embedder's tokenizer
async def test_a_document_id_too_long_for_the_bus_is_dead_lettered_and_ingest_keeps_its_connection(
    bus: Bus, settings: Settings
) -> None:
    """The reproduction: a 5,000-character id once built a KV subject the server refused, on every redelivery."""
    settings = msgspec.structs.replace(settings, model_dir=str(built_models(EMBEDDER)))
    accepted = await bus.nc.subscribe(bus.subject("ingest.accepted"))
    publisher = Publisher(bus, "external-system")
    async with running_app(create_ingest(settings)) as ingest:
        # Constructing the event in Python does not check its limits: decoding it in ingest does.
        await publisher.publish(DocumentSubmitted(tenant="acme", document_id="d" * 5000, text="Too long an id."))
        [letter] = await read_dead_letters(bus, 1, "ingest")
        await publisher.publish(
            DocumentSubmitted(tenant="acme", document_id="after-the-bad-one", text="A document with a fine id.")
        )
        event = decode_event((await accepted.next_msg(timeout=WAIT_S)).data, DocumentAccepted)
        reconnects = ingest.bus.nc.stats["reconnects"]
        connected = ingest.bus.nc.is_connected

    assert letter.service == "ingest" and letter.tenant == "acme"
    assert "$.document_id" in letter.error and "256" in letter.error, letter.error
    assert letter.attempts == 1
    assert event.document_id == "after-the-bad-one" and event.tenant == "acme"
    assert connected and reconnects == 0


async def test_metadata_over_its_limits_is_dead_lettered_with_the_limit_it_breaks(bus: Bus, settings: Settings) -> None:
    """Metadata is copied into every chunk: 1.1 MB of it once grew the store by 389 MiB."""
    handled: list[str] = []
    fine_handled = asyncio.Event()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        handled.append(event.document_id)
        fine_handled.set()

    service = Service("ingest", settings)
    service.consume("ingest", handle)
    # 300 KB: under the bus's message size, over every metadata limit.
    huge = {f"key-{i}": "v" * 1000 for i in range(300)}
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(6):
        deep = {"level": deep}
    await asyncio.wait_for(service.start(), WAIT_S)
    try:
        for document_id, metadata in (("big", huge), ("deep", deep), ("fine", {"team": "docs"})):
            body = {"type": DocumentSubmitted.event_type(), "document_id": document_id, "text": "x"}
            await bus.js.publish(ingest_subject(bus), msgspec.json.encode({**body, "metadata": metadata}))
        too_many, too_deep = await read_dead_letters(bus, 2, "ingest")
        await asyncio.wait_for(fine_handled.wait(), WAIT_S)
    finally:
        await asyncio.wait_for(service.stop(), WAIT_S)

    assert too_many.error == "undecodable payload: Expected `object` of length <= 64 - at `$.metadata`"
    assert "metadata is nested more than 4 levels deep" in too_deep.error, too_deep.error
    assert handled == ["fine"]


async def test_a_dead_letter_for_a_message_near_the_max_payload_is_published_truncated_and_says_so(
    bus: Bus, settings: Settings
) -> None:
    """Base64 makes a letter a third larger than its message: near the limit it must shrink, not be lost."""
    service = Service("ingest", settings)

    async def never_called(event: DocumentSubmitted, ctx: MessageContext) -> None:
        raise AssertionError("an undecodable message reached the handler")

    service.consume("ingest", never_called)
    garbage = b"{" + b"\xff" * (bus.nc.max_payload - 4096)
    await asyncio.wait_for(service.start(), WAIT_S)
    try:
        await bus.js.publish(ingest_subject(bus), garbage, headers={"ce-tenant": "acme", "ce-id": "huge-1"})
        [letter] = await read_dead_letters(bus, 1, "ingest")
    finally:
        await asyncio.wait_for(service.stop(), WAIT_S)

    kept = base64.b64decode(letter.payload)
    assert letter.payload_truncated
    assert letter.payload_bytes == len(garbage)
    assert 0 < len(kept) < len(garbage) and garbage.startswith(kept)
    assert letter.error.startswith("undecodable payload")
    assert letter.tenant == "acme" and letter.headers["ce-id"] == "huge-1"
