"""/v1/embeddings limits: inputs and characters per request, inputs per minute per key, and a default request rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from gyre_gateway.app import create_app
from gyre_gateway.rate_limit import RateLimiter
from gyre_runtime.config import load_settings

KEY = "unit-key-a"


def client(tmp_path: Path, *, limiter: RateLimiter | None = None, **settings: Any) -> TestClient:
    """No bus: a request that passes every limit is answered 503 (no embed service to ask)."""
    app = create_app(load_settings({}, api_keys=f"{KEY}:tenant-a", data_dir=str(tmp_path), nats_url="nats://127.0.0.1:1",
                                   **settings))
    if limiter is not None:
        app.state.rate_limiter = limiter
    return TestClient(app, headers={"Authorization": f"Bearer {KEY}"})


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def test_more_inputs_than_one_request_may_have_is_400_naming_the_limit(tmp_path: Path) -> None:
    gateway = client(tmp_path)
    error = error_of(gateway.post("/v1/embeddings", json={"input": ["lighthouse"] * 257}), 400)
    assert error["param"] == "input" and error["code"] == "too_many_inputs"
    assert "257 inputs, at most 256" in error["message"] and "GYRE_EMBEDDINGS_MAX_INPUTS" in error["message"]
    assert gateway.post("/v1/embeddings", json={"input": ["lighthouse"] * 256}).status_code == 503  # within


def test_more_characters_than_one_request_may_have_is_400_naming_the_limit(tmp_path: Path) -> None:
    gateway = client(tmp_path, embeddings_max_chars=1000)
    error = error_of(gateway.post("/v1/embeddings", json={"input": ["x" * 600, "y" * 600]}), 400)
    assert error["code"] == "input_too_long" and "1200 characters in all, at most 1000" in error["message"]
    assert gateway.post("/v1/embeddings", json={"input": ["x" * 500, "y" * 500]}).status_code == 503


def test_a_request_larger_than_a_minutes_allowance_is_400_not_a_429_that_never_ends(tmp_path: Path) -> None:
    gateway = client(tmp_path, embeddings_inputs_per_minute=10)
    error = error_of(gateway.post("/v1/embeddings", json={"input": ["a"] * 11}), 400)
    assert "10 inputs per minute" in error["message"] and "GYRE_EMBEDDINGS_INPUTS_PER_MINUTE" in error["message"]


def test_inputs_are_taken_from_a_keys_allowance_and_given_back_when_unused() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.acquire("key-1", 300, 256) == 0
    wait_s = limiter.acquire("key-1", 300, 256)
    assert wait_s > 0  # 44 left, 212 more needed at 5 per second
    assert abs(wait_s - 212 / 5) < 1e-6
    assert limiter.acquire("key-2", 300, 256) == 0  # another key has its own
    limiter.give_back("key-1", 256)
    assert limiter.acquire("key-1", 300, 256) == 0
    now[0] += 60
    assert limiter.acquire("key-1", 300, 300) == 0  # a minute refills all of it


def test_every_key_has_a_request_rate_limit_by_default(tmp_path: Path) -> None:
    defaults = load_settings({})
    assert defaults.rate_limit_per_minute == 1200 and defaults.embeddings_inputs_per_minute == 10_000
    gateway = client(tmp_path, limiter=RateLimiter(clock=lambda: 0.0))  # no refill while the test runs
    statuses = [gateway.get("/v1/models").status_code for _ in range(defaults.rate_limit_per_minute + 1)]
    assert set(statuses[:-1]) == {503} and statuses[-1] == 429
