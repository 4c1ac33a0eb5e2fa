"""One tenant cannot slow all: the real embed service (ONNX MiniLM from the model store) on a real nats-server.

Tenant A floods the embedding endpoint while tenant B searches and embeds. What is asserted is
counted, not timed: how many model calls finished while each of B's requests waited (B's texts
go into the next call, so a handful), against the dozens a first-come-first-served queue made
B wait for. Past its queue bound, A gets "busy" from the embed service and 429 with Retry-After
from the gateway, and B is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from gyre_cli.stack import NATS_MAX_PAYLOAD
from gyre_contracts import (
    EmbedRequest,
    EmbedResult,
    Event,
    RetrieveRequest,
    RetrieveResult,
    cloudevent_headers,
    decode_event,
    encode_body,
)
from gyre_embed.app import create_app as create_embed
from gyre_embed.batching import EmbeddingScheduler
from gyre_gateway.app import create_app as create_gateway
from gyre_runtime.bus.connection import Bus
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.service import Service
from tests.support.models import EMBEDDER, built_models
from tests.support.nats_server import NatsServer
from tests.support.services import serve_app

pytestmark = pytest.mark.models

KEY_A, KEY_B = "fair-key-tenant-a", "fair-key-tenant-b"
WAIT_S = 300.0  # bound on any one wait on a busy 2-core machine; embedding 1,024 short texts takes seconds
# Model calls that may finish while one of B's requests waits: the call running when it arrives, one
# that starts while it travels over the bus, its own, and one during the vector search after it.
CALLS_WHILE_B_WAITS = 4

E = TypeVar("E", bound=Event)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """With the payload limit of Gyre's deployed server configs: 256 vectors of 384 floats are ~2 MB of JSON."""
    config = tmp_path / "nats-server.conf"
    config.write_text(f"max_payload: {NATS_MAX_PAYLOAD}\n")
    with NatsServer(config_file=config) as server:
        yield server


def fairness_settings(nats_server: NatsServer, tmp_path: Path, **overrides: Any) -> Settings:
    return load_settings(
        {}, nats_url=nats_server.url, data_dir=str(tmp_path / "data"), model_dir=str(built_models(EMBEDDER)),
        onnx_threads=2, api_keys=f"{KEY_A}:tenant-a,{KEY_B}:tenant-b", request_timeout_s=WAIT_S, **overrides,
    )


@contextlib.asynccontextmanager
async def embed_service(settings: Settings) -> AsyncIterator[EmbeddingScheduler]:
    """The embed service as `gyre-embed` runs it (its app's wiring), minus the HTTP server; yields its scheduler."""
    service: Service = create_embed(settings).state.service
    try:
        await asyncio.wait_for(service.start(), WAIT_S)
        yield service.state["serving"].active.scheduler
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def embed_and_gateway(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """The embed service and a gateway in this process; yields HTTP clients of tenant A and tenant B."""
    async with embed_service(settings), serve_app(create_gateway(settings)) as url, \
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=WAIT_S) as a, \
            httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=WAIT_S) as b:
        yield a, b


async def ask(bus: Bus, event: Event, reply_type: type[E]) -> E:
    return await (await send(bus, event, reply_type))


async def send(bus: Bus, event: Event, reply_type: type[E]) -> Coroutine[Any, Any, E]:
    """Publish a request now (so what is sent after it arrives after it); await the result for its reply."""
    inbox = bus.nc.new_inbox()
    replies = await bus.nc.subscribe(inbox, max_msgs=1)
    headers = cloudevent_headers(event, source="gyre/test")
    await bus.nc.publish(bus.subject(event.subject), encode_body(event), reply=inbox, headers=headers)

    async def reply() -> E:
        msg = await replies.next_msg(timeout=WAIT_S)
        return decode_event(msg.data, reply_type, dict(msg.headers or {}))

    return reply()


async def calls_finished_while(scheduler: EmbeddingScheduler, request: Awaitable[E]) -> tuple[E, int]:
    before = scheduler.stats.calls
    reply = await request
    return reply, scheduler.stats.calls - before


def texts(tenant: str, count: int) -> tuple[str, ...]:
    return tuple(f"{tenant} asks about lighthouse number {i} and its keeper's logbook" for i in range(count))


async def test_another_tenants_searches_and_embeddings_take_turns_with_a_tenants_flood(
    nats_server: NatsServer, tmp_path: Path, bus: Bus
) -> None:
    settings = fairness_settings(nats_server, tmp_path)  # default bound: 1,024 texts waiting per tenant
    async with embed_service(settings) as scheduler:
        flood = asyncio.create_task(
            await send(bus, EmbedRequest(tenant="tenant-a", texts=texts("A", 1024)), EmbedResult)
        )
        # Sent after the flood on the same connection, so it finds the flood's texts waiting: refused at once.
        # Its answer is also the sign that the flood is in the scheduler's queue.
        over_bound = await ask(bus, EmbedRequest(tenant="tenant-a", texts=texts("A", 256)), EmbedResult)
        assert over_bound.retry_after_s >= 1 and "queue of tenant 'tenant-a' is full" in over_bound.error
        assert scheduler.waiting("tenant-a") > 0

        async def searches() -> list[int]:
            waits = []
            for i in range(3):
                search = ask(bus, RetrieveRequest(tenant="tenant-b", query=f"keeper {i}", top_k=3), RetrieveResult)
                result, calls = await calls_finished_while(scheduler, search)
                assert not result.error
                waits.append(calls)
            return waits

        embedding = ask(bus, EmbedRequest(tenant="tenant-b", texts=texts("B", 4)), EmbedResult)
        search_waits, (b_vectors, embedding_wait) = await asyncio.gather(
            searches(), calls_finished_while(scheduler, embedding)
        )
        assert not flood.done(), "B's requests should be served while A's flood is still running"
        assert max(search_waits) <= CALLS_WHILE_B_WAITS, search_waits
        assert embedding_wait <= CALLS_WHILE_B_WAITS
        assert len(b_vectors.vectors) == 4 and not b_vectors.error

        a_vectors = await asyncio.wait_for(flood, WAIT_S)
        assert not a_vectors.error and len(a_vectors.vectors) == 1024 and len(a_vectors.vectors[0]) == 384


async def test_a_tenant_past_its_queue_bound_gets_429_with_retry_after_and_the_other_tenant_is_served(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = fairness_settings(nats_server, tmp_path, embed_tenant_queue_inputs=256)
    async with embed_and_gateway(settings) as (a, b):
        flood = [a.post("/v1/embeddings", json={"input": list(texts("A", 256))}) for _ in range(6)]
        others = [b.post("/v1/embeddings", json={"input": list(texts("B", 2))}),
                  b.post("/v1/search", json={"query": "keeper's logbook", "top_k": 3})]
        responses = await asyncio.gather(*flood, *others)
        a_responses, b_responses = responses[:6], responses[6:]

        assert {r.status_code for r in a_responses} == {200, 429}, [r.text[:200] for r in a_responses]
        for refused in (r for r in a_responses if r.status_code == 429):
            error = refused.json()["error"]
            assert error["code"] == "embed_queue_full" and error["type"] == "rate_limit_error"
            assert int(refused.headers["retry-after"]) >= 1
        assert all(len(r.json()["data"]) == 256 for r in a_responses if r.status_code == 200)
        assert [r.status_code for r in b_responses] == [200, 200]

        again = await a.post("/v1/embeddings", json={"input": list(texts("A", 256))})  # its queue has drained
        assert again.status_code == 200, again.text


async def test_a_key_over_its_inputs_per_minute_gets_429_and_another_key_is_not_affected(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = fairness_settings(nats_server, tmp_path, embeddings_inputs_per_minute=300)
    async with embed_and_gateway(settings) as (a, b):
        assert (await a.post("/v1/embeddings", json={"input": list(texts("A", 256))})).status_code == 200
        refused = await a.post("/v1/embeddings", json={"input": list(texts("A", 256))})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "300 inputs per minute" in refused.json()["error"]["message"]
        assert int(refused.headers["retry-after"]) >= 1
        assert (await b.post("/v1/embeddings", json={"input": list(texts("B", 256))})).status_code == 200
