"""Gyre services run inside a test process against a real nats-server: start, wait until ready, inspect."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn
from nats.js.api import ConsumerInfo
from starlette.applications import Starlette

from gyre_contracts import DeadLetter, decode_event
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.consumer import Handler
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.service import Service
from tests.support.nats_server import NatsServer

WAIT_S = 30.0  # upper bound of any single wait for something that must happen


@contextlib.contextmanager
def fresh_nats(prefix: str, **settings: Any) -> Iterator[tuple[NatsServer, Settings]]:
    """A nats-server of its own and settings pointing at it, with a temporary data folder named ``prefix...``;
    ``settings`` are further settings values (``api_keys=...``)."""
    with NatsServer() as server, tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        yield server, load_settings({}, nats_url=server.url, data_dir=data_dir, **settings)


async def until_ready(service: Service) -> None:
    async with asyncio.timeout(WAIT_S):
        while not service.ready:
            if service.startup_error:
                raise AssertionError(f"the service did not start: {service.startup_error}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_app(app: Starlette) -> AsyncIterator[Service]:
    """A service's ASGI app with its lifespan running (connected, consuming), in this process."""
    service: Service = app.state.service
    async with app.router.lifespan_context(app):
        await until_ready(service)
        yield service


@contextlib.asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[str]:
    """A service's ASGI app (the gateway, usually) under uvicorn on a free port in this process, its lifespan
    running; yields its base URL once its service is ready (connected to the bus)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await until_ready(app.state.service)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, WAIT_S)
        sock.close()


@contextlib.asynccontextmanager
async def running_ingest(settings: Settings, handler: Handler) -> AsyncIterator[Service]:
    """The ingest Service shell in this process (no HTTP), consuming with ``handler``."""
    service = Service("ingest", settings)
    service.consume("ingest", handler)
    await asyncio.wait_for(service.start(), WAIT_S)
    try:
        yield service
    finally:
        await asyncio.wait_for(service.stop(), WAIT_S)


async def consumer_info(bus: Bus, stream: str = "GYRE_INGEST", durable: str = "ingest") -> ConsumerInfo:
    info: ConsumerInfo = await bus.js.consumer_info(bus.stream_name(stream), durable)
    return info


async def read_dead_letters(bus: Bus, count: int, service: str = "ingest") -> list[DeadLetter]:
    """The first ``count`` dead letters of ``service``, read from the DLQ stream."""
    subject, stream = bus.subject(f"dlq.{service}"), bus.stream_name("GYRE_DLQ")
    sub = await bus.js.subscribe(subject, stream=stream, ordered_consumer=True)
    letters: list[DeadLetter] = []
    try:
        while len(letters) < count:
            msg = await sub.next_msg(timeout=WAIT_S)
            letters.append(decode_event(msg.data, DeadLetter, dict(msg.headers or {})))
    finally:
        await sub.unsubscribe()
    return letters
