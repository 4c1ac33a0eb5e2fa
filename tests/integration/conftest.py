"""Fixtures for integration tests: a fresh real nats-server per test and settings pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gyre_runtime.bus.connection import Bus, connect, ensure_topology
from gyre_runtime.config import Settings, load_settings
from tests.support.nats_server import NatsServer


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    with NatsServer() as server:
        yield server


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings({}, nats_url=nats_server.url, data_dir=str(tmp_path / "data"))


@pytest.fixture
async def bus(settings: Settings) -> AsyncIterator[Bus]:
    """A connection of the test itself, with the topology (streams, buckets) declared."""
    connection = await connect(settings, name="gyre-test")
    await ensure_topology(connection)
    yield connection
    await connection.close()
