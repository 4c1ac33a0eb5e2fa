"""The real local stack (nats-server + seven Gyre processes + the default models) for end-to-end tests.

One stack serves the whole session, but every test module works in tenants of its own (``tenant_a``,
``tenant_b``: `<module>-a`, `<module>-b`, with keys made by `gyre keys`), so what one module indexes
never shows up in another's searches or answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio

from gyre_cli.keys_command import create_key
from gyre_cli.stack import LocalStack
from gyre_runtime.config import Settings, load_settings
from tests.support.stack import EventWatcher, running_stack, watching

# The stack's own key (GYRE_API_KEYS): an operator key of every service (/stats, /metrics), tenant `operator`.
OPERATOR_KEY = "test-operator-key"


@dataclass(frozen=True)
class Tenant:
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self, stack: LocalStack) -> httpx.Client:
        return httpx.Client(base_url=stack.gateway_url, headers=self.headers, timeout=180)


def cli_settings(stack: LocalStack) -> Settings:
    """Settings of a `gyre` command run by the operator against ``stack``."""
    return load_settings({}, nats_url=stack.nats_url)


async def new_tenant(stack: LocalStack, name: str) -> Tenant:
    key, _ = await create_key(cli_settings(stack), name, ("admin",))
    return Tenant(name, key)


def module_tenant(request: pytest.FixtureRequest, suffix: str) -> str:
    """`test_data_pipeline` -> `data-pipeline-a`: a tenant no other module uses."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return f"{module.replace('_', '-')}-{suffix}"


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    env = {"GYRE_API_KEYS": f"{OPERATOR_KEY}:operator", "GYRE_MAX_NEW_TOKENS": "64"}
    with running_stack("gyre-e2e-", env) as local:
        yield local


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def tenant_a(stack: LocalStack, request: pytest.FixtureRequest) -> Tenant:
    return await new_tenant(stack, module_tenant(request, "a"))


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def tenant_b(stack: LocalStack, request: pytest.FixtureRequest) -> Tenant:
    return await new_tenant(stack, module_tenant(request, "b"))


@pytest.fixture(scope="module")
def client_a(stack: LocalStack, tenant_a: Tenant) -> Iterator[httpx.Client]:
    with tenant_a.client(stack) as client:
        yield client


@pytest.fixture(scope="module")
def client_b(stack: LocalStack, tenant_b: Tenant) -> Iterator[httpx.Client]:
    with tenant_b.client(stack) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def events(stack: LocalStack) -> AsyncIterator[EventWatcher]:
    async with watching(stack) as watcher:
        yield watcher
