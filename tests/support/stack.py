"""The real local stack (nats-server and every Gyre process on the default models) for e2e, chaos and backend tests.

Each stack gets its own temporary data folder and free ports, so several can run side by side
(the openai-backend tests run one stack against another). When it stops, its nats-server log must
hold no permission violation: every process runs with its own least-privilege NATS user, and a
refused publish or subscribe is a gap in the permission table (gyre_runtime.bus.permissions) even
when no test noticed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg

from gyre_cli.stack import SERVICES, LocalStack
from tests.support.models import built_models
from tests.support.nats_server import free_port

# Two threads per ONNX session: the tests run on small machines, several processes share the cores.
DEFAULT_ENV = {"GYRE_ONNX_THREADS": "2"}


def new_stack(data_dir: Path, env: Mapping[str, str], **options: Any) -> LocalStack:
    """A stack (not started) on free ports in ``data_dir``, with ``env`` over DEFAULT_ENV for every process;
    ``options`` are further LocalStack fields (``external_nats_urls`` for a cluster)."""
    return LocalStack(
        data_dir=data_dir,
        model_dir=built_models(),
        nats_port=free_port(),
        nats_monitor_port=free_port(),
        ports={name: free_port() for name in SERVICES},
        extra_env={**DEFAULT_ENV, **env},
        **options,
    )


def assert_no_permission_violations(stack: LocalStack) -> None:
    log = (stack.log_dir / "nats-server.log").read_text(errors="replace")
    violations = [line for line in log.splitlines() if "Permissions Violation" in line]
    assert violations == [], "permission violations in the stack's nats-server log:\n" + "\n".join(violations[:20])


@contextlib.contextmanager
def running_stack(prefix: str, env: Mapping[str, str]) -> Iterator[LocalStack]:
    """A started stack in a temporary folder named ``prefix...``; stopped and checked on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        stack = new_stack(Path(data_dir), env)
        with stack:
            yield stack
        assert_no_permission_violations(stack)


@contextlib.asynccontextmanager
async def running_stack_async(prefix: str, env: Mapping[str, str]) -> AsyncIterator[LocalStack]:
    """``running_stack`` for async tests: started and stopped in a thread, so the test's loop keeps running."""
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        stack = new_stack(Path(data_dir), env)
        try:
            await asyncio.to_thread(stack.start)
            yield stack
        finally:
            await asyncio.to_thread(stack.stop)
        assert_no_permission_violations(stack)


class EventWatcher:
    """Collects Gyre events from a stack's NATS, so tests await events instead of sleeping."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self._changed = asyncio.Event()

    async def on_message(self, msg: Msg) -> None:
        self.seen.append((msg.subject, dict(msg.headers or {}), msg.data))
        self._changed.set()

    async def wait_for(self, subject: str, ce_subject: str, timeout_s: float = 120.0) -> bytes:
        """The body of the first ``subject`` event about ``ce_subject`` (a document or request id)."""
        return (await self._first((subject,), ce_subject, timeout_s))[1]

    async def wait_for_any(self, subjects: tuple[str, ...], ce_subject: str, timeout_s: float = 120.0) -> str:
        """The first of ``subjects`` seen for ``ce_subject`` (e.g. indexed or rejected)."""
        return (await self._first(subjects, ce_subject, timeout_s))[0]

    async def _first(self, subjects: tuple[str, ...], ce_subject: str, timeout_s: float) -> tuple[str, bytes]:
        async with asyncio.timeout(timeout_s):
            while True:
                for subject, headers, data in self.seen:
                    if subject in subjects and headers.get("ce-subject") == ce_subject:
                        return subject, data
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def watching(stack: LocalStack) -> AsyncIterator[EventWatcher]:
    """Every ``gyre.>`` event of ``stack`` from now on, for as long as the block runs."""
    watcher = EventWatcher()
    nc = await nats.connect(stack.nats_url)
    try:
        await nc.subscribe("gyre.>", cb=watcher.on_message)
        yield watcher
    finally:
        await nc.drain()
