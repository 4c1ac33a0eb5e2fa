"""Operational routes are closed by default: API docs need a key; /metrics, /stats, /tallies an operator credential."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gyre_gateway.app import create_app as create_gateway
from gyre_improve.app import create_app as create_improve
from gyre_monitor.app import create_app as create_monitor
from gyre_runtime.config import Settings, load_settings

KEY_A = "unit-key-a"  # an operator key: from GYRE_API_KEYS
METRICS_TOKEN = "scrape-token-0123456789"


def gateway(tmp_path: Path, **settings: Any) -> TestClient:
    """No lifespan is run, so the bus is never connected: enough for what these routes need."""
    return TestClient(create_gateway(load_settings(
        {}, api_keys=f"{KEY_A}:tenant-a", data_dir=str(tmp_path), nats_url="nats://127.0.0.1:1", **settings
    )))


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def test_api_docs_need_a_key_by_default(tmp_path: Path) -> None:
    client = gateway(tmp_path)
    for path in ("/docs", "/openapi.json"):
        refused = client.get(path)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert client.get(path, headers=bearer("not-a-key")).status_code == 401
    assert "/v1/embeddings" in client.get("/openapi.json", headers=bearer(KEY_A)).json()["paths"]
    assert "swagger-ui" in client.get("/docs", headers=bearer(KEY_A)).text


def test_api_docs_can_be_public_or_off(tmp_path: Path) -> None:
    public = gateway(tmp_path, api_docs="public")
    assert public.get("/openapi.json").status_code == 200 and public.get("/docs").status_code == 200
    off = gateway(tmp_path, api_docs="off")
    for path in ("/docs", "/openapi.json"):
        assert off.get(path, headers=bearer(KEY_A)).status_code == 404


def test_no_other_api_description_is_served(tmp_path: Path) -> None:
    assert gateway(tmp_path).get("/redoc").status_code == 404


def test_an_unknown_docs_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="api_docs"):
        load_settings({"GYRE_API_DOCS": "open"})


def test_gateway_metrics_need_an_operator_credential(tmp_path: Path) -> None:
    client = gateway(tmp_path, metrics_token=METRICS_TOKEN)
    refused = client.get("/metrics")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["error"]["code"] == "operator_credential_required"
    assert "GYRE_METRICS_TOKEN" in refused.json()["error"]["message"]
    assert client.get("/metrics", headers=bearer("wrong-token")).status_code == 401
    assert "gyre_gateway_requests_total" in client.get("/metrics", headers=bearer(METRICS_TOKEN)).text
    assert client.get("/metrics", headers=bearer(KEY_A)).status_code == 200


def test_the_metrics_token_opens_no_api_route(tmp_path: Path) -> None:
    client = gateway(tmp_path, metrics_token=METRICS_TOKEN)
    assert client.get("/v1/models", headers=bearer(METRICS_TOKEN)).status_code == 401
    assert client.get("/openapi.json", headers=bearer(METRICS_TOKEN)).status_code == 401


def test_health_and_readiness_stay_open(tmp_path: Path) -> None:
    client = gateway(tmp_path)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503  # not connected, but answered without a key


def service_settings(tmp_path: Path, **settings: Any) -> Settings:
    return load_settings({}, data_dir=str(tmp_path), nats_url="nats://127.0.0.1:1", **settings)


@pytest.mark.parametrize(("create", "view"), [(create_monitor, "/stats"), (create_improve, "/tallies")])
def test_a_services_views_and_metrics_need_an_operator_credential(tmp_path: Path, create: Any, view: str) -> None:
    client = TestClient(create(service_settings(tmp_path, metrics_token=METRICS_TOKEN)))
    for path in ("/metrics", view):
        refused = client.get(path)
        assert refused.status_code == 401 and "GYRE_METRICS_TOKEN" in refused.json()["error"]
        assert client.get(path, headers=bearer("wrong-token")).status_code == 401
        # past the door: 200, or 503 for a view whose store needs the bus
        assert client.get(path, headers=bearer(METRICS_TOKEN)).status_code in (200, 503)
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 503


def test_with_no_token_configured_the_services_are_closed_to_everyone_but_operators(tmp_path: Path) -> None:
    client = TestClient(create_monitor(service_settings(tmp_path)))
    assert client.get("/stats").status_code == 401
    assert client.get("/stats", headers=bearer("")).status_code == 401
    (tmp_path / "api-key").write_text("gyre-local-key\n")  # the key `gyre up` writes, shared by the local stack
    assert client.get("/stats", headers=bearer("gyre-local-key")).status_code == 200
    assert client.get("/metrics", headers=bearer("gyre-local-key")).status_code == 200


def test_the_token_can_come_from_a_file_and_rotates_without_a_restart(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("first-token\n")
    client = TestClient(create_monitor(service_settings(tmp_path, metrics_token_file=str(token_file))))
    assert client.get("/metrics", headers=bearer("first-token")).status_code == 200
    token_file.write_text("second-token-longer\n")
    assert client.get("/metrics", headers=bearer("first-token")).status_code == 401
    assert client.get("/metrics", headers=bearer("second-token-longer")).status_code == 200
