"""Stored API keys, scopes per endpoint, per-key rate limits and generation back-pressure, without a bus."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from gyre_contracts import GenerationLoad
from gyre_gateway.app import create_app
from gyre_gateway.auth import StoredKeys
from gyre_gateway.chat.backpressure import over_capacity, queue_full
from gyre_gateway.errors import retry_after_header
from gyre_gateway.rate_limit import RateLimiter, TokenBucket
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.api_keys import (
    KEY_LENGTH,
    ApiKeyError,
    ApiKeyRecord,
    Scope,
    hash_key,
    key_id_of,
    looks_like_stored_key,
    new_key,
    new_record,
    parse_scopes,
)

USER = [{"role": "user", "content": "hi"}]

# One request per endpoint group, and the scope it needs.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, Scope]] = [
    ("POST", "/v1/documents", {"text": "hello"}, "ingest"),
    ("GET", "/v1/documents/some-doc", None, "ingest"),
    ("DELETE", "/v1/documents/some-doc", None, "ingest"),
    ("POST", "/v1/search", {"query": "q"}, "query"),
    ("POST", "/v1/chat/completions", {"messages": USER}, "query"),
    ("POST", "/v1/embeddings", {"input": "x"}, "query"),
    ("GET", "/v1/models", None, "query"),
    ("POST", "/v1/feedback", {"request_id": "chatcmpl-x", "rating": 1}, "feedback"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def stored_key_client(
    settings: Settings, scopes: tuple[Scope, ...], *, rate_limit: int | None = None, revoked: bool = False
) -> tuple[TestClient, ApiKeyRecord]:
    """An app that already knows one stored key (in its lookup cache, so no bus is needed) and a client using it."""
    app = create_app(settings)
    key = new_key()
    record = new_record(key, "tenant-s", scopes, rate_limit)
    if revoked:
        record = msgspec.structs.replace(record, revoked_at=record.created_at)
    stored: StoredKeys = app.state.stored_keys
    stored.remember(record.hash, record)
    return TestClient(app, headers={"Authorization": f"Bearer {key}"}), record


# ---------------------------------------------------------------- keys


def test_a_new_key_is_long_random_and_its_id_is_its_prefix() -> None:
    key, other = new_key(), new_key()
    assert key != other and len(key) == KEY_LENGTH == 53 and key.startswith("gyre-")
    assert key_id_of(key) == key[:13] and looks_like_stored_key(key)
    assert not looks_like_stored_key("gyre-short") and not looks_like_stored_key("x" * KEY_LENGTH)


def test_a_record_holds_the_keys_hash_never_the_key() -> None:
    key = new_key()
    record = new_record(key, "acme", ("query", "feedback"), 30)
    assert record.hash == hash_key(key) and len(record.hash) == 64 and key not in repr(record)
    assert record.key_id == key_id_of(key) and record.tenant == "acme" and record.rate_limit_per_minute == 30
    assert record.allows("query") and record.allows("feedback") and not record.allows("ingest")
    assert not record.revoked and record.created_at.tzinfo is not None


def test_an_admin_key_may_do_everything() -> None:
    record = new_record(new_key(), "acme", ("admin",))
    assert all(record.allows(s) for s in ("ingest", "query", "feedback", "admin"))


def test_scopes_are_parsed_checked_and_deduplicated() -> None:
    assert parse_scopes("query, feedback,query") == ("query", "feedback")
    with pytest.raises(ApiKeyError, match="unknown scope"):
        parse_scopes("query,write")
    with pytest.raises(ApiKeyError, match="at least one"):
        parse_scopes(" , ")


@pytest.mark.parametrize(
    ("tenant", "rate", "fragment"), [("  ", None, "tenant"), ("acme", 0, "at least 1"), ("acme", -5, "at least 1")]
)
def test_a_key_that_cannot_work_is_not_created(tenant: str, rate: int | None, fragment: str) -> None:
    with pytest.raises(ApiKeyError, match=fragment):
        new_record(new_key(), tenant, ("query",), rate)


def test_a_looked_up_key_is_trusted_for_the_ttl_then_asked_again() -> None:
    clock = Clock()
    cache = StoredKeys(2.0, clock=clock)
    record = new_record(new_key(), "t", ("query",))
    assert cache.cached(record.hash) == (False, None)
    cache.remember(record.hash, record)
    assert cache.cached(record.hash) == (True, record)
    cache.remember("unknown-hash", None)
    assert cache.cached("unknown-hash") == (True, None)  # a wrong key does not hit the bucket each time
    clock.now += 2.0
    assert cache.cached(record.hash) == (False, None)


def test_the_key_cache_is_bounded() -> None:
    cache = StoredKeys(60.0, clock=Clock(), max_entries=2)
    for name in ("a", "b", "c"):
        cache.remember(name, None)
    assert cache.cached("a") == (False, None) and cache.cached("c") == (True, None)


# ---------------------------------------------------------------- scopes


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_a_key_without_the_endpoints_scope_is_403(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None, scope: Scope
) -> None:
    others: tuple[Scope, ...] = tuple(s for s in ("ingest", "query", "feedback") if s != scope)
    client, record = stored_key_client(settings, others)
    error = error_of(client.request(method, path, json=body), 403)
    assert error["type"] == "permission_error" and error["code"] == "insufficient_scope"
    assert f"`{scope}`" in error["message"] and record.key_id in error["message"]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_a_key_with_the_scope_or_admin_gets_past_auth(
    settings: Settings, method: str, path: str, body: dict[str, Any] | None, scope: Scope
) -> None:
    for scopes in ((scope,), ("admin",)):
        client, _ = stored_key_client(settings, scopes)
        # Past auth and scope, the unconnected bus answers 503.
        assert error_of(client.request(method, path, json=body), 503)["code"] == "bus_unavailable"


def test_keys_from_settings_have_every_scope(client: TestClient) -> None:
    for method, path, body, _ in ENDPOINTS:
        assert client.request(method, path, json=body).status_code == 503


def test_a_revoked_key_is_401_naming_the_key_id(settings: Settings) -> None:
    client, record = stored_key_client(settings, ("query",), revoked=True)
    error = error_of(client.get("/v1/models"), 401)
    assert error["code"] == "invalid_api_key" and "revoked" in error["message"] and record.key_id in error["message"]


def test_a_key_of_the_stored_shape_needs_the_key_store_which_needs_the_bus(settings: Settings) -> None:
    client = TestClient(create_app(settings), headers={"Authorization": f"Bearer {new_key()}"})
    assert error_of(client.get("/v1/models"), 503)["code"] == "bus_unavailable"


def test_without_static_keys_the_401_says_how_to_create_one(tmp_path: Path) -> None:
    app = create_app(load_settings({}, data_dir=str(tmp_path)))
    error = error_of(TestClient(app, headers={"Authorization": "Bearer nope"}).get("/v1/models"), 401)
    assert "gyre keys create" in error["message"]


# ---------------------------------------------------------------- rate limits


def test_a_token_bucket_allows_a_minutes_worth_then_refills_continuously() -> None:
    bucket = TokenBucket(capacity=3, tokens=3, updated=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(20.0)  # one token per 20 s at 3 per minute
    assert bucket.take(10.0) == pytest.approx(10.0)
    assert bucket.take(20.0) == 0.0


def test_each_key_has_its_own_bucket_and_a_changed_limit_starts_afresh() -> None:
    clock = Clock()
    limiter = RateLimiter(clock)
    assert limiter.acquire("a", 1) == 0.0
    assert limiter.acquire("a", 1) == pytest.approx(60.0)
    assert limiter.acquire("b", 1) == 0.0
    assert limiter.acquire("a", 2) == 0.0  # the key's limit was raised


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    assert [retry_after_header(s) for s in (0.01, 1.0, 1.2, 59.9)] == ["1", "1", "2", "60"]


def test_a_key_over_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    client, record = stored_key_client(settings, ("query",), rate_limit=2)
    assert [client.get("/v1/models").status_code for _ in range(2)] == [503, 503]
    response = client.get("/v1/models")
    error = error_of(response, 429)
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert "2 requests per minute" in error["message"] and record.key_id in error["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 30


def test_the_default_rate_limit_applies_to_keys_without_their_own(tmp_path: Path) -> None:
    settings = load_settings({}, data_dir=str(tmp_path), api_keys="k:t", rate_limit_per_minute=1)
    client = TestClient(create_app(settings), headers={"Authorization": "Bearer k"})
    assert client.get("/v1/models").status_code == 503
    assert error_of(client.get("/v1/models"), 429)["code"] == "rate_limit_exceeded"


def test_a_forbidden_request_uses_none_of_the_rate(settings: Settings) -> None:
    client, _ = stored_key_client(settings, ("ingest",), rate_limit=1)
    assert client.get("/v1/models").status_code == 403
    assert client.get("/v1/documents/x").status_code == 503


# ---------------------------------------------------------------- back-pressure


def load(in_flight: int, capacity: int) -> GenerationLoad:
    return GenerationLoad(in_flight=in_flight, capacity=capacity)


def test_requests_wait_up_to_the_allowance_beyond_capacity() -> None:
    assert not over_capacity(load(0, 4), 2)
    assert not over_capacity(load(5, 4), 2)
    assert over_capacity(load(6, 4), 2)
    assert over_capacity(load(1, 1), 0)


def test_a_full_queue_is_429_with_retry_after() -> None:
    error = queue_full(load(9, 4), 2)
    assert error.status_code == 429 and error.code == "generation_queue_full"
    assert error.headers == {"Retry-After": "2"} and "9 requests in flight" in error.message


def test_the_recorded_creation_time_is_utc() -> None:
    assert new_record(new_key(), "t", ("query",)).created_at.utcoffset() == dt.timedelta(0)
