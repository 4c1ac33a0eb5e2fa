"""Keys, scopes, limits and errors of the real gateway on the real stack: what an organisation exposing it relies on."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import nats
import pytest

from gyre_cli.keys_command import create_key, revoke_key
from gyre_cli.stack import LocalStack
from gyre_contracts import GenerationCancelRequested, GenerationLoad, GenerationLoadRequest, decode_event, encode_body
from gyre_runtime.config import load_settings
from gyre_runtime.state.api_keys import Scope
from tests.e2e.conftest import Tenant, cli_settings
from tests.support.chat import user_question
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e

USER = [{"role": "user", "content": "Hello?"}]
KEY_CACHE_S = load_settings({}).api_key_cache_s  # the stack runs with the default


async def new_client(
    stack: LocalStack, tenant: Tenant, scopes: tuple[Scope, ...], rate: int | None = None
) -> httpx.Client:
    key, _ = await create_key(cli_settings(stack), tenant.name, scopes, rate)
    return httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=180)


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


# ---------------------------------------------------------------- keys and scopes


async def test_a_key_made_by_gyre_keys_works_within_its_scopes(stack: LocalStack, tenant_a: Tenant) -> None:
    with await new_client(stack, tenant_a, ("query", "feedback")) as client:
        assert client.get("/v1/models").status_code == 200
        assert client.post("/v1/search", json={"query": "lighthouse"}).status_code == 200
        error = openai_error(client.post("/v1/documents", json={"text": "not allowed"}), 403)
    assert error["type"] == "permission_error" and error["code"] == "insufficient_scope"


async def test_a_revoked_key_stops_working_within_seconds(stack: LocalStack, tenant_a: Tenant) -> None:
    key, record = await create_key(cli_settings(stack), tenant_a.name, ("query",))
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/v1/models").status_code == 200
        await revoke_key(cli_settings(stack), record.key_id)
        revoked_at = time.monotonic()
        # No event says when the gateway's cache entry expires: ask until refused, within a bound.
        while (response := client.get("/v1/models")).status_code == 200:
            assert time.monotonic() - revoked_at < KEY_CACHE_S + 5, "the revoked key still works"
            await asyncio.sleep(0.1)
    assert "revoked" in openai_error(response, 401)["message"]
    assert time.monotonic() - revoked_at <= KEY_CACHE_S + 1.5


async def test_a_key_over_its_rate_gets_429_with_retry_after(stack: LocalStack, tenant_a: Tenant) -> None:
    with await new_client(stack, tenant_a, ("query",), rate=2) as client:
        assert [client.get("/v1/models").status_code for _ in range(2)] == [200, 200]
        refused = client.get("/v1/models")
    assert openai_error(refused, 429)["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 30


# ---------------------------------------------------------------- every /v1 error in OpenAI's format


def test_errors_of_every_kind_come_in_openai_format(stack: LocalStack, client_a: httpx.Client) -> None:
    url = stack.gateway_url
    assert openai_error(httpx.get(f"{url}/v1/models"), 401)["type"] == "authentication_error"
    assert openai_error(client_a.get("/v1/no-such-thing"), 404)["code"] == "not_found"
    assert openai_error(client_a.delete("/v1/chat/completions"), 405)["code"] == "method_not_allowed"
    too_big = b"x" * (load_settings({}).max_request_bytes + 1)
    response = client_a.post("/v1/search", content=too_big, headers={"Content-Type": "application/json"})
    assert openai_error(response, 413)["code"] == "request_too_large"
    response = client_a.post("/v1/search", content=b"query=x", headers={"Content-Type": "text/plain"})
    assert openai_error(response, 415)["code"] == "unsupported_media_type"
    error = openai_error(client_a.post("/v1/search", json={"query": "q", "top_k": 500}), 400)
    assert error["param"] == "top_k" and error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("fields", "param"),
    [({"temperature": 5}, "temperature"), ({"top_p": 0}, "top_p"), ({"top_k": -1}, "top_k"),
     ({"max_tokens": 0}, "max_tokens"), ({"max_tokens": 10**6}, "max_tokens"), ({"stop": ["a"] * 5}, "stop"),
     ({"seed": "x"}, "seed"), ({"n": 3}, "n"), ({"messages": []}, "messages")],
)
def test_out_of_range_chat_parameters_are_400_naming_the_parameter(
    client_a: httpx.Client, fields: dict[str, Any], param: str
) -> None:
    error = openai_error(client_a.post("/v1/chat/completions", json={"messages": USER, **fields}), 400)
    assert error["param"] == param and error["message"].startswith(f"{param}:")


# ---------------------------------------------------------------- back-pressure and cancelling


async def test_the_generate_service_says_its_load_and_the_gateway_admits_within_it(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client
) -> None:
    nc = await nats.connect(stack.nats_url)
    try:
        asked = encode_body(GenerationLoadRequest(tenant=tenant_a.name))
        reply = await nc.request("gyre.generate.load", asked, timeout=5)
    finally:
        await nc.drain()
    load = decode_event(reply.data, GenerationLoad, dict(reply.headers or {}))
    assert load.capacity >= 1 and load.in_flight >= 0
    response = client_a.post(
        "/v1/chat/completions", json={"messages": USER, "max_tokens": 8, "retrieval": False}
    )
    assert response.status_code == 200, response.text


async def test_a_client_leaving_mid_stream_cancels_its_generation(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client, events: EventWatcher
) -> None:
    payload = user_question("Count from 1 to 300, one number per line.", stream=True, max_tokens=600)
    with client_a.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        first = next(line for line in response.iter_lines() if line.startswith("data: "))
        request_id = json.loads(first.removeprefix("data: "))["id"]
    # Leaving the block closed the connection.
    data = await events.wait_for(f"gyre.generate.cancel.{request_id}", request_id, timeout_s=30)
    cancel = decode_event(data, GenerationCancelRequested)
    assert cancel.reason == "client disconnected" and cancel.tenant == tenant_a.name
    # Nothing of the request's key ever travels in an event.
    assert tenant_a.key not in data.decode()
