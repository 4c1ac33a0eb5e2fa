"""The gateway's models endpoints against a real nats-server: the served models, one by id, a 404 naming them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gyre_gateway.app import create_app
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from tests.support.nats_server import NatsServer
from tests.support.services import until_ready

KEY = "models-api-key"
GENERATOR = ModelEntry(id="tiny-generator", kind="generation", version="tiny-generator:1:0123456789ab",
                       served_by="generate")
EMBEDDER = ModelEntry(id="tiny-embedder", kind="embedding", version="tiny-embedder:1:ba9876543210", served_by="embed")


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return load_settings({}, nats_url=nats_server.url, data_dir=str(tmp_path), api_keys=f"{KEY}:tenant-a")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Bus]]:
    """The gateway app in this event loop, connected, and a bus of the test's own."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await until_ready(app.state.service)
        bus = await connect(settings, name="gyre-test")
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {KEY}"}
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as http:
                yield http, bus
        finally:
            await bus.close()


async def test_a_served_model_is_found_by_its_id_and_an_unknown_one_is_404_naming_those_served(
    gateway: tuple[httpx.AsyncClient, Bus],
) -> None:
    http, bus = gateway
    missing = await http.get("/v1/models/tiny-generator")
    assert missing.status_code == 404
    assert "models served: none" in missing.json()["error"]["message"]
    registry = await ModelRegistry.open(bus)
    for entry in (GENERATOR, EMBEDDER):
        await registry.register(entry)
    found = await http.get("/v1/models/tiny-generator")
    assert found.status_code == 200
    assert found.json() | {"created": 0} == {"id": "tiny-generator", "object": "model", "created": 0,
                                             "owned_by": "gyre", "kind": "generation", "version": GENERATOR.version}
    listed = await http.get("/v1/models")
    assert [m["id"] for m in listed.json()["data"]] == ["tiny-embedder", "tiny-generator"]
    unknown = await http.get("/v1/models/gpt-4")
    error = unknown.json()["error"]
    assert unknown.status_code == 404 and (error["code"], error["param"]) == ("model_not_found", "model")
    assert error["message"] == "unknown model 'gpt-4'; models served: tiny-embedder, tiny-generator"


async def test_the_model_endpoint_needs_a_key(gateway: tuple[httpx.AsyncClient, Bus]) -> None:
    http, _ = gateway
    response = await http.get("/v1/models/tiny-generator", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401
