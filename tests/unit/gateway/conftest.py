"""A gateway app with two API keys and no bus: enough for auth, validation and error-format tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gyre_gateway.app import create_app
from gyre_runtime.config import Settings, load_settings

KEY_A, KEY_B = "unit-key-a", "unit-key-b"


@pytest.fixture
def api_key_b() -> str:
    return KEY_B


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(
        {}, api_keys=f"{KEY_A}:tenant-a,{KEY_B}:tenant-b", data_dir=str(tmp_path), nats_url="nats://127.0.0.1:1"
    )


@pytest.fixture
def client(settings: Settings) -> TestClient:
    """No lifespan is run, so the bus is never connected: endpoints past validation answer 503."""
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {KEY_A}"})
