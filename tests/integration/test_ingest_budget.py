"""The ingest service on a real nats-server: one document cannot stall ingest for everyone else.

Reproductions of the issue through the real service (extraction workers, the real tokenizer): a run of
non-space text long enough to have frozen the event loop for minutes is accepted like any other
document; a PDF that would parse for hours is rejected ``extraction_timeout`` at the time limit, and
while it is being read, /healthz answers and another document is accepted.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import httpx
import msgspec
import pytest
from nats.aio.subscription import Subscription
from starlette.applications import Starlette

from gyre_contracts import DocumentAccepted, DocumentRejected, DocumentSubmitted, decode_event
from gyre_ingest.app import create_app as create_ingest
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from tests.support.hostile_documents import shared_stream_pdf
from tests.support.models import EMBEDDER, built_models
from tests.support.services import running_app

pytestmark = pytest.mark.models  # the real tokenizer

WAIT_S = 60.0  # upper bound of any single wait; each normally takes well under the extraction time limit
EXTRACTION_TIMEOUT_S = 6.0


@contextlib.asynccontextmanager
async def running(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """The ingest app with its lifespan running in this process, and an HTTP client for it."""
    transport = httpx.ASGITransport(app=app)
    async with running_app(app), httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield client


E = TypeVar("E", DocumentAccepted, DocumentRejected)


async def next_event(subscription: Subscription, event_type: type[E]) -> E:
    msg = await subscription.next_msg(timeout=WAIT_S)
    return decode_event(msg.data, event_type, dict(msg.headers or {}))


async def test_a_document_over_the_time_limit_is_rejected_while_health_answers_and_others_are_accepted(
    bus: Bus, settings: Settings
) -> None:
    settings = msgspec.structs.replace(
        settings, model_dir=str(built_models(EMBEDDER)), extraction_workers=2,
        extraction_timeout_s=EXTRACTION_TIMEOUT_S,
        max_document_chars=50_000_000,  # lifts the PDF's page and content budgets: only the time limit is left
    )  # fmt: skip
    bomb = shared_stream_pdf(pages=100, lines=35_000)  # 150 MB of page content to parse from ~20 KB
    accepted = await bus.nc.subscribe(bus.subject("ingest.accepted"))
    rejected = await bus.nc.subscribe(bus.subject("ingest.rejected"))
    publisher = Publisher(bus, "test")
    async with running(create_ingest(settings)) as ingest:
        await publisher.publish(
            DocumentSubmitted(
                tenant="acme", document_id="bomb", content=base64.b64encode(bomb).decode(),
                content_type="application/pdf",
            )
        )  # fmt: skip
        await publisher.publish(
            DocumentSubmitted(tenant="acme", document_id="small", text="A small document, sent after the bomb.")
        )
        small = await next_event(accepted, DocumentAccepted)
        bomb_still_in_progress = rejected.pending_msgs == 0
        health = await ingest.get("/healthz")
        refusal = await next_event(rejected, DocumentRejected)

    assert small.document_id == "small"
    assert bomb_still_in_progress, "the small document waited for the bomb"
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert refusal.document_id == "bomb"
    assert [r.code for r in refusal.reasons] == ["extraction_timeout"]
    assert "GYRE_EXTRACTION_TIMEOUT_S" in refusal.reasons[0].message


async def test_a_long_run_without_spaces_is_accepted_like_any_document(bus: Bus, settings: Settings) -> None:
    # 200,000 characters: the quadratic sentence splitter would have held the event loop for minutes.
    settings = msgspec.structs.replace(settings, model_dir=str(built_models(EMBEDDER)), extraction_workers=1)
    text = "The report starts here. " + "x" * 200_000 + ". It ends with a sentence."
    accepted = await bus.nc.subscribe(bus.subject("ingest.accepted"))
    async with running(create_ingest(settings)) as ingest:
        await Publisher(bus, "test").publish(DocumentSubmitted(tenant="acme", document_id="run", text=text))
        event = await next_event(accepted, DocumentAccepted)
        health = await ingest.get("/healthz")
    assert event.document_id == "run" and event.characters == len(text)
    assert health.status_code == 200
