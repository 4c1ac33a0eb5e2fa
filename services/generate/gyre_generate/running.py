"""The generations this replica is running: counted for the load reply, found by request id to cancel.

A cancel request (core ``gyre.generate.cancel.<request_id>``) reaches every replica. The one running
that request cancels the task that reads the model's stream (the backend stops stepping it and frees
its cache) and closes the stream. A cancel for a request not running here is remembered for a while:
the request may still wait in the stream, and is then answered "cancelled" when it is picked up
instead of generated for no one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from gyre_runtime.generation import GenerationStream
from gyre_runtime.logging import get_logger

log = get_logger()

REMEMBER_CANCELS_S = 600.0
REMEMBER_CANCELS_MAX = 10_000


class Run:
    """One generation in progress."""

    def __init__(self, request_id: str, tenant: str) -> None:
        self.request_id = request_id
        self.tenant = tenant
        self.cancel_reason: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._stream: GenerationStream | None = None

    @property
    def cancelled(self) -> bool:
        return self.cancel_reason is not None

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason or "cancelled"
        if self._task is not None:
            self._task.cancel()

    async def pump(self, stream: GenerationStream, reader: Coroutine[Any, Any, None]) -> bool:
        """Run ``reader`` (which consumes ``stream``) to its end; True when it was cancelled.

        The reader runs as its own task so a cancel request can interrupt it mid-token without
        cancelling the handler, which still has to publish what was generated.
        """
        if self.cancelled:
            reader.close()
            return True
        task = asyncio.create_task(reader, name=f"generate-{self.request_id}")
        self._task, self._stream = task, stream
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:  # the handler itself is stopped (service shutdown)
            task.cancel()
            raise
        finally:
            self._task = None
            with contextlib.suppress(Exception):
                await stream.aclose()
        if task.cancelled():
            self.cancel_reason = self.cancel_reason or "cancelled"
            return True
        task.result()  # the reader's exception, if any
        return False


class RunningGenerations:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._runs: dict[str, Run] = {}
        self._early_cancels: OrderedDict[str, tuple[float, str, str]] = OrderedDict()

    @property
    def in_flight(self) -> int:
        return len(self._runs)

    @contextlib.asynccontextmanager
    async def track(self, request_id: str, tenant: str) -> AsyncIterator[Run]:
        """Count a generation as in flight while the block runs; a cancel that came early applies at once."""
        run = Run(request_id, tenant)
        early = self._early_cancels.pop(request_id, None)
        if early is not None and early[1] == tenant:
            run.cancel(early[2])
        self._runs[request_id] = run
        try:
            yield run
        finally:
            if self._runs.get(request_id) is run:
                del self._runs[request_id]

    def cancel(self, request_id: str, tenant: str, reason: str) -> bool:
        """Cancel a running generation (True), or remember the cancel for when it starts (False)."""
        run = self._runs.get(request_id)
        if run is not None:
            if run.tenant != tenant:
                log.warning("cancel_ignored_other_tenant", request_id=request_id, tenant=tenant)
                return False
            run.cancel(reason)
            return True
        self._remember(request_id, tenant, reason)
        return False

    def _remember(self, request_id: str, tenant: str, reason: str) -> None:
        now = time.monotonic()
        self._early_cancels[request_id] = (now, tenant, reason)
        self._early_cancels.move_to_end(request_id)
        while self._early_cancels:
            oldest_id, (at, _, _) = next(iter(self._early_cancels.items()))
            if now - at < REMEMBER_CANCELS_S and len(self._early_cancels) <= REMEMBER_CANCELS_MAX:
                break
            del self._early_cancels[oldest_id]
