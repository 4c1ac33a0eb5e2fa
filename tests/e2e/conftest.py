"""The real local stack (nats-server + seven Gyre processes + the default models) for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import nats
import pytest
import pytest_asyncio

from gyre_cli.stack import SERVICES, LocalStack
from tests.support.nats_server import free_port

REPO = Path(__file__).resolve().parents[2]
KEY_A, KEY_B = "test-key-tenant-a", "test-key-tenant-b"


def model_dir() -> Path:
    path = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    for name in ("all-minilm-l6-v2", "smollm2-135m-instruct"):
        if not (path / name / "manifest.json").exists():
            pytest.fail(f"model {name} is missing in {path}: run `just models`")
    return path


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="gyre-e2e-") as data_dir:
        local = LocalStack(
            data_dir=Path(data_dir),
            model_dir=model_dir(),
            nats_port=free_port(),
            nats_monitor_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={
                "GYRE_API_KEYS": f"{KEY_A}:tenant-a,{KEY_B}:tenant-b",
                "GYRE_ONNX_THREADS": "2",
                "GYRE_MAX_NEW_TOKENS": "64",
            },
        )
        with local:
            yield local
        # Every process runs with its own least-privilege NATS user: a refused publish or subscribe is a
        # gap in the permission table (gyre_runtime.bus.permissions) even when no test noticed it.
        log = (local.log_dir / "nats-server.log").read_text(errors="replace")
        violations = [line for line in log.splitlines() if "Permissions Violation" in line]
        assert violations == [], "permission violations in the stack's nats-server log:\n" + "\n".join(violations[:20])


@pytest.fixture(scope="session")
def client_a(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=180) as c:
        yield c


@pytest.fixture(scope="session")
def client_b(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=180) as c:
        yield c


class EventWatcher:
    """Collects Gyre events from the stack's NATS, so tests await events instead of sleeping."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self._changed = asyncio.Event()

    async def on_message(self, msg: nats.aio.msg.Msg) -> None:
        self.seen.append((msg.subject, dict(msg.headers or {}), msg.data))
        self._changed.set()

    async def wait_for(self, subject: str, ce_subject: str, timeout_s: float = 120.0) -> bytes:
        async def found() -> bytes:
            while True:
                for subj, headers, data in self.seen:
                    if subj == subject and headers.get("ce-subject") == ce_subject:
                        return data
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(found(), timeout_s)

    async def wait_for_any(self, subjects: tuple[str, ...], ce_subject: str, timeout_s: float = 120.0) -> str:
        """The first of ``subjects`` seen for ``ce_subject`` (e.g. indexed or rejected)."""

        async def found() -> str:
            while True:
                for subj, headers, _ in self.seen:
                    if subj in subjects and headers.get("ce-subject") == ce_subject:
                        return subj
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(found(), timeout_s)


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def events(stack: LocalStack) -> AsyncIterator[EventWatcher]:
    watcher = EventWatcher()
    nc = await nats.connect(stack.nats_url)
    await nc.subscribe("gyre.>", cb=watcher.on_message)
    yield watcher
    await nc.drain()
