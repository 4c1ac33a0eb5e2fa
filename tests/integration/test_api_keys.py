"""API keys on a real nats-server: `gyre keys` create/list/revoke, and the gateway honouring scopes, revokes and rates.

The gateway runs in this process under uvicorn; keys are created with the CLI module's functions
(and once with the `gyre` command itself), so what an operator does is what is tested.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from gyre_cli.keys_command import add_parser, create_key, key_table, list_keys, revoke_key
from gyre_gateway.app import create_app
from gyre_runtime.config import Settings
from gyre_runtime.state.api_keys import hash_key
from tests.support.nats_server import NatsServer
from tests.support.services import fresh_nats, serve_app

WAIT_S = 20.0
KEY_CACHE_S = 1.0  # the gateway's GYRE_API_KEY_CACHE_S here: a revoke must bite within about this long
STATIC_KEY = "int-static-key"
GYRE = str(Path(sys.executable).parent / "gyre")


@dataclass
class Stack:
    url: str
    settings: Settings
    nats: NatsServer

    def client(self, key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=WAIT_S)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stack() -> AsyncIterator[Stack]:
    keys = {"api_keys": f"{STATIC_KEY}:tenant-static", "api_key_cache_s": KEY_CACHE_S}
    with fresh_nats("gyre-keys-", **keys) as (nats_server, settings):
        async with serve_app(create_app(settings)) as url:
            yield Stack(url=url, settings=settings, nats=nats_server)


# ---------------------------------------------------------------- the CLI's functions


async def test_a_created_key_is_stored_only_as_its_hash(stack: Stack) -> None:
    key, record = await create_key(stack.settings, "acme", ("query", "feedback"), 30)
    assert record.hash == hash_key(key) and record.key_id == key[:13]
    listed = await list_keys(stack.settings, "acme")
    assert [r.key_id for r in listed] == [record.key_id]
    assert listed[0].scopes == ("query", "feedback") and listed[0].rate_limit_per_minute == 30
    assert key not in key_table(listed) and record.key_id in key_table(listed)


async def test_keys_are_listed_per_tenant_and_revoked_by_id(stack: Stack) -> None:
    _, one = await create_key(stack.settings, "tenant-one", ("ingest",))
    _, two = await create_key(stack.settings, "tenant-two", ("admin",))
    assert {r.key_id for r in await list_keys(stack.settings, "tenant-one")} == {one.key_id}
    assert {one.key_id, two.key_id} <= {r.key_id for r in await list_keys(stack.settings)}
    revoked = await revoke_key(stack.settings, one.key_id)
    assert revoked is not None and revoked.revoked_at is not None
    again = await revoke_key(stack.settings, one.key_id)
    assert again is not None and again.revoked_at == revoked.revoked_at  # revoking twice changes nothing
    assert await revoke_key(stack.settings, "gyre-nosuchid") is None
    [listed] = await list_keys(stack.settings, "tenant-one")
    assert listed.revoked


async def gyre_keys(stack: Stack, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "GYRE_NATS_URL": stack.nats.url}
    process = await asyncio.create_subprocess_exec(
        GYRE, "keys", *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT_S)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_gyre_keys_command_prints_the_key_once_and_never_again(stack: Stack) -> None:
    code, out, err = await gyre_keys(
        stack, "create", "--tenant", "cli-tenant", "--scopes", "query", "--rate-limit", "5"
    )
    key = out.strip()
    assert code == 0 and key.startswith("gyre-") and "only time the key is shown" in err
    code, listing, _ = await gyre_keys(stack, "list", "--tenant", "cli-tenant")
    assert code == 0 and key[:13] in listing and key not in listing and "query" in listing
    async with stack.client(key) as client:
        assert (await client.get("/v1/models")).status_code == 200
    code, out, err = await gyre_keys(stack, "revoke", key[:13])
    assert code == 0 and "revoked" in out, err


def test_an_unknown_scope_exits_2_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["keys", "create", "--tenant", "x", "--scopes", "query,write"])
    assert args.func(args) == 2
    assert "unknown scope(s) write" in capsys.readouterr().err


# ---------------------------------------------------------------- the gateway


async def test_a_stored_key_works_within_its_scopes_and_tenant(stack: Stack) -> None:
    key, record = await create_key(stack.settings, "scoped", ("query",))
    async with stack.client(key) as client:
        models = await client.get("/v1/models")
        assert models.status_code == 200, models.text
        forbidden = await client.post("/v1/documents", json={"text": "hello"})
        assert forbidden.status_code == 403
        error = forbidden.json()["error"]
        assert error["code"] == "insufficient_scope" and "`ingest`" in error["message"]
        assert record.key_id in error["message"] and key not in error["message"]


async def test_an_admin_key_may_use_every_endpoint_for_its_own_tenant(stack: Stack) -> None:
    key, _ = await create_key(stack.settings, "admin-tenant", ("admin",))
    async with stack.client(key) as admin, stack.client(STATIC_KEY) as other:
        assert (await admin.post("/v1/documents", json={"id": "adm", "text": "x"})).status_code == 202
        assert (await admin.get("/v1/documents/adm")).status_code == 200
        assert (await other.get("/v1/documents/adm")).status_code == 404  # another tenant's document


async def test_a_revoked_key_is_refused_within_seconds(stack: Stack) -> None:
    key, record = await create_key(stack.settings, "revokee", ("query",))
    async with stack.client(key) as client:
        assert (await client.get("/v1/models")).status_code == 200  # now cached by the gateway
        await revoke_key(stack.settings, record.key_id)
        revoked_at = asyncio.get_running_loop().time()
        # No event tells a test when a gateway's cache entry expires: ask until refused, within a bound.
        async with asyncio.timeout(KEY_CACHE_S + 5.0):
            while (response := await client.get("/v1/models")).status_code == 200:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        took = asyncio.get_running_loop().time() - revoked_at
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_api_key" and "revoked" in error["message"] and record.key_id in error["message"]
    assert took <= KEY_CACHE_S + 1.0


async def test_an_unknown_key_of_the_right_shape_is_401(stack: Stack) -> None:
    key, _ = await create_key(stack.settings, "someone", ("query",))
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    async with stack.client(forged) as client:
        response = await client.get("/v1/models")
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid API key"


async def test_a_key_over_its_rate_limit_gets_429_with_retry_after(stack: Stack) -> None:
    key, _ = await create_key(stack.settings, "limited", ("query",), rate_limit_per_minute=3)
    async with stack.client(key) as client:
        statuses = [(await client.get("/v1/models")).status_code for _ in range(3)]
        refused = await client.get("/v1/models")
    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # 3 per minute: one every 20 s
    async with stack.client(STATIC_KEY) as other:
        assert (await other.get("/v1/models")).status_code == 200  # another key's allowance is its own


@pytest.mark.parametrize("scopes", [("feedback",), ("ingest",)])
async def test_keys_without_query_scope_cannot_chat(stack: Stack, scopes: tuple[str, ...]) -> None:
    key, _ = await create_key(stack.settings, "narrow", scopes)  # type: ignore[arg-type]
    async with stack.client(key) as client:
        response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 403 and response.json()["error"]["type"] == "permission_error"
