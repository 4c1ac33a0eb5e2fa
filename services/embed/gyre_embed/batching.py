"""One owner of the embedding model: queries before bulk, fair turns between tenants, bounded request queues.

Callers of many kinds submit texts concurrently: retrieval (one query text), the OpenAI-compatible
embeddings endpoint (up to a few hundred texts) and indexing (a document's chunks). The scheduler
packs them into model calls of up to ``max_batch`` texts and runs one call at a time on its own
thread.

- Two priority classes. Query texts (retrieval and ``/v1/embeddings``) go before bulk texts
  (indexing); a bulk batch waits at most ``max_wait_s`` to fill up across messages.
- Within a class, tenants take turns: deficit round robin in units of texts. Each turn gives a
  tenant up to ``quantum`` texts, so a model call mixes the texts of every tenant waiting, and a
  tenant's 256-text request is cut into pieces that alternate with other tenants' queries
  instead of holding the model for seconds. Within a tenant, its requests take turns the same
  way, so its own searches are not stuck behind its own large batch either.
- ``/v1/embeddings`` requests (:meth:`EmbeddingScheduler.embed_request`) are refused with
  :class:`TenantQueueFull` (and a retry hint) once their tenant already has
  ``max_waiting_per_tenant`` query texts waiting; retrieval and indexing are never refused
  (a search is one text, and indexing is bounded by its consumer's pending messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

Vectors = list[list[float]]
EmbedFn = Callable[[list[str]], Any]
Slice = tuple["_Request", int, int]  # (request, start, end): texts[start:end] of one request

# Texts per second assumed before the first model call has been timed (MiniLM int8 on 2 cores does ~390).
ASSUMED_TEXTS_PER_S = 100.0


class TenantQueueFull(Exception):
    """A tenant already has as many query texts waiting as it may: ask again after ``retry_after_s``."""

    def __init__(self, tenant: str, waiting: int, limit: int, retry_after_s: float) -> None:
        super().__init__(
            f"the embedding queue of tenant {tenant!r} is full ({waiting} texts waiting, at most {limit}); "
            f"retry after {retry_after_s:.1f}s"
        )
        self.tenant = tenant
        self.waiting = waiting
        self.limit = limit
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class _Request:
    texts: list[str]
    future: asyncio.Future[Vectors]
    tenant: str
    taken: int = 0
    results: Vectors = field(default_factory=list)

    @property
    def remaining(self) -> int:
        return len(self.texts) - self.taken


@dataclass(eq=False)
class _TenantQueue:
    requests: deque[_Request] = field(default_factory=deque)
    deficit: int = 0  # texts this tenant may still take in its current turn
    waiting: int = 0  # texts not yet taken into a model call

    def take(self, count: int, piece: int) -> list[Slice]:
        """Up to ``count`` texts, its requests taking turns in pieces of at most ``piece`` texts."""
        taken: list[Slice] = []
        while count > 0 and self.requests:
            request = self.requests[0]
            size = min(count, piece, request.remaining)
            taken.append((request, request.taken, request.taken + size))
            request.taken += size
            count -= size
            self.waiting -= size
            if request.remaining == 0:
                self.requests.popleft()
            else:
                self.requests.rotate(-1)
        return taken


class FairQueue:
    """Texts waiting in one priority class: deficit round robin over tenants, ``quantum`` texts a turn."""

    def __init__(self, quantum: int) -> None:
        if quantum < 1:
            raise ValueError("quantum must be at least 1 text")
        self.quantum = quantum
        self._tenants: dict[str, _TenantQueue] = {}
        self._turns: deque[str] = deque()  # tenants with texts waiting, whose turn is first

    def __bool__(self) -> bool:
        return bool(self._turns)

    def push(self, request: _Request) -> None:
        queue = self._tenants.get(request.tenant)
        if queue is None:
            queue = self._tenants[request.tenant] = _TenantQueue()
            self._turns.append(request.tenant)  # a tenant that was idle waits for one round, no more
        queue.requests.append(request)
        queue.waiting += request.remaining

    def waiting(self, tenant: str | None = None) -> int:
        """Texts not yet in a model call: of ``tenant``, or of everyone."""
        if tenant is not None:
            queue = self._tenants.get(tenant)
            return queue.waiting if queue is not None else 0
        return sum(q.waiting for q in self._tenants.values())

    @property
    def tenants_waiting(self) -> int:
        return len(self._turns)

    def take(self, room: int) -> list[Slice]:
        """The texts of the next model call (at most ``room``), tenant after tenant."""
        taken: list[Slice] = []
        while room > 0 and self._turns:
            tenant = self._turns[0]
            queue = self._tenants[tenant]
            if queue.deficit <= 0:
                queue.deficit += self.quantum
            got = queue.take(min(queue.deficit, room), self.quantum)
            count = sum(end - start for _, start, end in got)
            queue.deficit -= count
            room -= count
            taken.extend(got)
            if not queue.requests:
                self._turns.popleft()
                del self._tenants[tenant]  # an idle tenant keeps no credit
            elif queue.deficit <= 0:
                self._turns.rotate(-1)
            # else: the call is full; this tenant goes on first in the next one with the rest of its turn
        return taken

    def drain(self) -> Iterator[_Request]:
        for queue in self._tenants.values():
            yield from queue.requests
        self._tenants.clear()
        self._turns.clear()


@dataclass
class BatchStats:
    calls: int = 0
    texts: int = 0
    query_calls: int = 0
    busy_s: float = 0.0
    refused_requests: int = 0  # /v1/embeddings requests answered "queue full"

    @property
    def texts_per_s(self) -> float:
        return self.texts / self.busy_s if self.busy_s > 0 and self.texts else ASSUMED_TEXTS_PER_S


class EmbeddingScheduler:
    def __init__(
        self,
        embed: EmbedFn,
        *,
        max_batch: int = 64,
        max_wait_s: float = 0.01,
        quantum: int | None = None,
        max_waiting_per_tenant: int = 1024,
        embed_queries: EmbedFn | None = None,
    ) -> None:
        self._embed = embed
        # Query calls may use another function: one whose vectors do not depend on the batch
        # (OnnxEmbedder.embed_each), so a search gives the same hits whoever else searches meanwhile.
        self._embed_queries = embed_queries or embed
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        # A quarter of a call per turn: a call mixes up to four tenants, and a tenant's query that
        # arrives while another tenant floods goes into the very next call.
        self.quantum = quantum or max(1, max_batch // 4)
        self.max_waiting_per_tenant = max_waiting_per_tenant
        self._queries = FairQueue(self.quantum)
        self._bulk = FairQueue(self.quantum)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: list[_Request] = []  # the requests of the model call running now
        self.stats = BatchStats()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="embedding-scheduler")

    async def stop(self) -> None:
        in_flight = self._in_flight  # cancelling the call forgets them; their callers must not wait for ever
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for request in (*in_flight, *self._queries.drain(), *self._bulk.drain()):
            if not request.future.done():
                request.future.set_exception(RuntimeError("embedding scheduler stopped"))

    def waiting(self, tenant: str) -> int:
        """Query texts of ``tenant`` not yet in a model call."""
        return self._queries.waiting(tenant)

    async def embed_query(self, texts: Sequence[str], *, tenant: str = "") -> Vectors:
        """Retrieval: query class, never refused."""
        return await self._submit(self._queries, texts, tenant)

    async def embed_request(self, texts: Sequence[str], *, tenant: str = "") -> Vectors:
        """``/v1/embeddings``: query class, refused with :class:`TenantQueueFull` past the tenant's bound.

        A request larger than the bound is taken when the tenant has nothing waiting, so that it
        can ever be served (the gateway caps the inputs of a request well below the bound).
        """
        waiting = self._queries.waiting(tenant)
        if waiting and waiting + len(texts) > self.max_waiting_per_tenant:
            self.stats.refused_requests += 1
            raise TenantQueueFull(tenant, waiting, self.max_waiting_per_tenant, self.retry_after_s(tenant))
        return await self._submit(self._queries, texts, tenant)

    async def embed_bulk(self, texts: Sequence[str], *, tenant: str = "") -> Vectors:
        """Indexing: bulk class, batched across messages, after every query."""
        return await self._submit(self._bulk, texts, tenant)

    def retry_after_s(self, tenant: str) -> float:
        """When ``tenant``'s waiting texts will have gone, at its fair share of the measured throughput."""
        share = self.stats.texts_per_s / max(1, self._queries.tenants_waiting)
        return max(1.0, math.ceil(self._queries.waiting(tenant) / share))

    async def _submit(self, queue: FairQueue, texts: Sequence[str], tenant: str) -> Vectors:
        if not texts:
            return []
        self.start()
        request = _Request(list(texts), asyncio.get_running_loop().create_future(), tenant)
        queue.push(request)
        self._wakeup.set()
        return await request.future

    async def _run(self) -> None:
        while True:
            if not self._queries and not self._bulk:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._queries:
                batch = self._queries.take(self.max_batch)
                self.stats.query_calls += 1
                if batch:
                    await self._call_model(batch, self._embed_queries)
                continue
            else:
                # Let a bulk batch fill up a little, unless a query arrives meanwhile.
                deadline = time.monotonic() + self.max_wait_s
                while self._bulk.waiting() < self.max_batch and not self._queries:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                if self._queries:
                    continue
                batch = self._bulk.take(self.max_batch)
            if not batch:
                continue
            await self._call_model(batch, self._embed)

    async def _call_model(self, batch: list[Slice], embed: EmbedFn) -> None:
        texts = [t for request, start, end in batch for t in request.texts[start:end]]
        self._in_flight = [request for request, _, _ in batch]
        started = time.perf_counter()
        try:
            vectors = await asyncio.to_thread(embed, texts)
        except Exception as exc:  # the callers' handlers decide (nak and retry)
            for request, _, _ in batch:
                if not request.future.done():
                    request.future.set_exception(exc)
            return
        finally:
            self.stats.busy_s += time.perf_counter() - started
            self._in_flight = []
        self.stats.calls += 1
        self.stats.texts += len(texts)
        offset = 0
        for request, start, end in batch:
            count = end - start
            if not request.future.done():  # a request whose earlier piece failed is answered already
                request.results.extend([float(x) for x in row] for row in vectors[offset : offset + count])
                if len(request.results) == len(request.texts):
                    request.future.set_result(request.results)
            offset += count
