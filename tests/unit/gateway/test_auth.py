"""API keys: parsing, the key file, constant-time lookup, and 401s in the OpenAI error format."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gyre_gateway.app import create_app
from gyre_gateway.auth import ApiKeyring
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.operator_access import find_tenant, key_file_path, parse_key_entry, parse_key_file, parse_key_list
from gyre_runtime.state.api_keys import ApiKeyError, new_record


def test_a_key_list_maps_each_key_to_its_tenant() -> None:
    assert parse_key_list("k1:tenant-a, k2:tenant-b ,") == {"k1": "tenant-a", "k2": "tenant-b"}


def test_a_bare_key_belongs_to_the_default_tenant() -> None:
    assert parse_key_entry("gyre-abc") == ("gyre-abc", "default")
    assert parse_key_entry("gyre-abc:") == ("gyre-abc", "default")


def test_a_key_with_colons_is_split_at_the_last_one() -> None:
    assert parse_key_entry("sk:with:colons:tenant-x") == ("sk:with:colons", "tenant-x")


def test_blank_lines_and_comments_of_a_key_file_are_skipped() -> None:
    text = "# keys\n\nk1:tenant-a\n  k2  \n#k3:tenant-c\n"
    assert parse_key_file(text) == {"k1": "tenant-a", "k2": "default"}


def test_find_tenant_matches_only_the_exact_key() -> None:
    keys = {"secret-one": "a", "secret-two": "b"}
    assert find_tenant(keys, "secret-two") == "b"
    assert find_tenant(keys, "secret-tw") is None
    assert find_tenant(keys, "secret-two ") is None
    assert find_tenant({}, "anything") is None


def test_the_key_file_defaults_to_api_key_in_the_data_dir(tmp_path: Path) -> None:
    assert key_file_path(load_settings({}, data_dir=str(tmp_path))) == tmp_path / "api-key"
    other = tmp_path / "keys.txt"
    assert key_file_path(load_settings({}, data_dir=str(tmp_path), api_key_file=str(other))) == other


def test_keys_come_from_settings_and_the_key_file_together(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("gyre-local-key\n")
    keyring = ApiKeyring(load_settings({}, data_dir=str(tmp_path), api_keys="k1:tenant-a"))
    assert keyring.keys() == {"gyre-local-key": "default", "k1": "tenant-a"}


def test_a_changed_key_file_is_read_again_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    keyring = ApiKeyring(load_settings({}, data_dir=str(tmp_path)))
    assert keyring.tenant_for("new-key") is None  # no file yet
    path.write_text("old-key:t1\n")
    assert keyring.tenant_for("old-key") == "t1"
    path.write_text("new-key:t2\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # coarse mtime clocks
    assert keyring.tenant_for("new-key") == "t2"
    assert keyring.tenant_for("old-key") is None


def assert_unauthorized(response_json: dict[str, object], fragment: str) -> None:
    error = response_json["error"]
    assert isinstance(error, dict)
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert fragment in error["message"]
    assert set(error) == {"message", "type", "param", "code"}


def test_a_request_without_a_key_gets_401(settings: Settings) -> None:
    response = TestClient(create_app(settings)).get("/v1/models")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert_unauthorized(response.json(), "missing API key")


def test_a_request_with_a_wrong_key_gets_401(settings: Settings) -> None:
    response = TestClient(create_app(settings)).get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert_unauthorized(response.json(), "invalid API key")


def test_a_basic_auth_header_is_not_a_key(settings: Settings, api_key_b: str) -> None:
    response = TestClient(create_app(settings)).get("/v1/models", headers={"Authorization": f"Basic {api_key_b}"})
    assert response.status_code == 401


def test_without_any_configured_key_the_401_says_how_to_add_one(tmp_path: Path) -> None:
    app = create_app(load_settings({}, data_dir=str(tmp_path)))
    response = TestClient(app).get("/v1/models", headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert_unauthorized(response.json(), "GYRE_API_KEYS")


def test_a_valid_key_passes_and_meets_the_unconnected_bus_with_503(client: TestClient) -> None:
    response = client.get("/v1/models")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "bus_unavailable"
    assert response.headers["retry-after"] == "1"


def test_health_needs_no_key_and_readiness_reports_the_missing_bus(settings: Settings) -> None:
    client = TestClient(create_app(settings))
    assert client.get("/healthz").json() == {"status": "ok", "service": "gateway"}
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json() == {"ready": False, "service": "gateway"}


def test_a_key_for_a_tenant_that_cannot_be_a_subject_token_is_refused_where_it_is_configured() -> None:
    # "Acme Corp" would make every event of that key's tenant a dead letter in every service.
    with pytest.raises(ValueError, match="not a valid tenant id"):
        parse_key_list("k1:tenant-a,k2:Acme Corp")
    with pytest.raises(ApiKeyError, match="not a valid tenant id"):
        new_record("gyre-k", "acme.corp", ("query",))


def test_a_bad_line_in_the_key_file_skips_that_line_only() -> None:
    assert parse_key_file("k1:tenant-a\nk2:bad tenant\nk3\n") == {"k1": "tenant-a", "k3": "default"}
