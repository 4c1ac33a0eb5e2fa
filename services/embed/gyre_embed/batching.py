"""One owner of the embedding model: batches bulk texts across messages, serves queries first.

Handlers of many ChunksReady messages submit their texts concurrently; the scheduler packs them
into batches of up to ``max_batch`` (waiting at most ``max_wait_s`` for a batch to fill) and
runs one model call at a time on its own thread. Query embeddings (retrieval, /v1/embeddings)
jump the queue: the next model call serves them before any bulk batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Vectors = list[list[float]]
EmbedFn = Callable[[list[str]], Any]


@dataclass
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors]
    taken: int = 0
    results: Vectors = field(default_factory=list)


@dataclass
class BatchStats:
    calls: int = 0
    texts: int = 0
    query_calls: int = 0
    busy_s: float = 0.0


class EmbeddingScheduler:
    def __init__(self, embed: EmbedFn, *, max_batch: int = 64, max_wait_s: float = 0.01) -> None:
        self._embed = embed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queries: deque[_Request] = deque()
        self._bulk: deque[_Request] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.stats = BatchStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="embedding-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in (*self._queries, *self._bulk):
            if not request.future.done():
                request.future.set_exception(RuntimeError("embedding scheduler stopped"))

    async def embed_query(self, texts: Sequence[str]) -> Vectors:
        return await self._submit(self._queries, texts)

    async def embed_bulk(self, texts: Sequence[str]) -> Vectors:
        return await self._submit(self._bulk, texts)

    async def _submit(self, queue: deque[_Request], texts: Sequence[str]) -> Vectors:
        if not texts:
            return []
        self.start()
        request = _Request(list(texts), asyncio.get_running_loop().create_future())
        queue.append(request)
        self._wakeup.set()
        return await request.future

    def _take(self, queue: deque[_Request], room: int) -> list[tuple[_Request, int, int]]:
        """Slices (request, start, end) of queued texts, oldest first, filling ``room`` places."""
        taken = []
        for request in queue:
            if room <= 0:
                break
            start = request.taken
            end = min(len(request.texts), start + room)
            if end > start:
                taken.append((request, start, end))
                request.taken = end
                room -= end - start
        while queue and queue[0].taken >= len(queue[0].texts):
            queue.popleft()
        return taken

    def _pending(self, queue: deque[_Request]) -> int:
        return sum(len(r.texts) - r.taken for r in queue)

    async def _run(self) -> None:
        while True:
            if not self._queries and not self._bulk:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._queries:
                batch = self._take(self._queries, self.max_batch)
                self.stats.query_calls += 1
            else:
                # Let a bulk batch fill up a little, unless a query arrives meanwhile.
                deadline = time.monotonic() + self.max_wait_s
                while self._pending(self._bulk) < self.max_batch and not self._queries:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                if self._queries:
                    continue
                batch = self._take(self._bulk, self.max_batch)
            if not batch:
                continue
            texts = [t for request, start, end in batch for t in request.texts[start:end]]
            started = time.perf_counter()
            try:
                vectors = await asyncio.to_thread(self._embed, texts)
            except Exception as exc:  # the callers' handlers decide (nak and retry)
                for request, _, _ in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                continue
            finally:
                self.stats.busy_s += time.perf_counter() - started
            self.stats.calls += 1
            self.stats.texts += len(texts)
            offset = 0
            for request, start, end in batch:
                count = end - start
                request.results.extend([float(x) for x in row] for row in vectors[offset : offset + count])
                offset += count
                if len(request.results) == len(request.texts) and not request.future.done():
                    request.future.set_result(request.results)
