"""Fairness benchmark (issue 8): tenant B's query latency while tenant A floods the embedding model.

The real MiniLM ONNX model from the model store, in this process, behind two schedulers:

- ``first come, first served``: how queries were queued before (every query text in arrival
  order, a tenant's whole batch before anything sent after it), kept here as the baseline;
- ``fair``: Gyre's EmbeddingScheduler (tenants take turns in pieces of a quarter of a call).

Tenant A keeps ``--flood-requests`` requests of 256 texts (the gateway's cap per request) queued
all the time; tenant B sends ``--queries`` one-text queries one after another. B's latency is
the query embedding's, which is what a flood delays (the vector search after it takes ~1 ms).
Baseline and fair are measured in the same run, on the same machine, and reported as ratios.

    .venv/bin/python -m tests.bench.fairness [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gyre_embed.batching import EmbeddingScheduler, EmbedFn, TenantQueueFull, Vectors
from gyre_runtime.config import load_settings
from gyre_runtime.models.embedder import OnnxEmbedder
from tests.bench.sections import heading, write_section

SECTION_MARKER = "## Issue 8: one tenant cannot slow all"
TEXTS_PER_REQUEST = 256


class QueryScheduler(Protocol):
    async def embed_query(self, texts: Sequence[str], *, tenant: str = "") -> Vectors: ...
    async def embed_request(self, texts: Sequence[str], *, tenant: str = "") -> Vectors: ...
    async def stop(self) -> None: ...


@dataclass(eq=False)
class _Waiting:
    texts: list[str]
    future: asyncio.Future[Vectors]
    taken: int = 0
    results: Vectors = field(default_factory=list)


class FirstComeFirstServed:
    """The baseline: query texts in arrival order, whoever sent them, ``max_batch`` per model call."""

    def __init__(self, embed: EmbedFn, *, max_batch: int) -> None:
        self._embed = embed
        self.max_batch = max_batch
        self._queue: deque[_Waiting] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def embed_query(self, texts: Sequence[str], *, tenant: str = "") -> Vectors:
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        waiting = _Waiting(list(texts), asyncio.get_running_loop().create_future())
        self._queue.append(waiting)
        self._wakeup.set()
        return await waiting.future

    embed_request = embed_query

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiting in self._queue:
            waiting.future.cancel()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch: list[tuple[_Waiting, int, int]] = []
            room = self.max_batch
            for waiting in self._queue:
                if room == 0:
                    break
                end = min(len(waiting.texts), waiting.taken + room)
                batch.append((waiting, waiting.taken, end))
                room -= end - waiting.taken
                waiting.taken = end
            while self._queue and self._queue[0].taken == len(self._queue[0].texts):
                self._queue.popleft()
            texts = [t for w, start, end in batch for t in w.texts[start:end]]
            vectors = await asyncio.to_thread(self._embed, texts)
            offset = 0
            for waiting, start, end in batch:
                waiting.results.extend([float(x) for x in row] for row in vectors[offset : offset + end - start])
                offset += end - start
                if len(waiting.results) == len(waiting.texts) and not waiting.future.done():
                    waiting.future.set_result(waiting.results)


def a_texts(n: int) -> list[str]:
    return [f"tenant A's batch sentence {i} about harbour tides and lighthouse keepers" for i in range(n)]


async def flood(scheduler: QueryScheduler, stop: asyncio.Event) -> int:
    """One of tenant A's clients: a 256-text request after another (after the retry hint when refused)."""
    sent = 0
    while not stop.is_set():
        try:
            await scheduler.embed_request(a_texts(TEXTS_PER_REQUEST), tenant="tenant-a")
            sent += TEXTS_PER_REQUEST
        except TenantQueueFull as busy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), busy.retry_after_s)
    return sent


async def b_latencies(scheduler: QueryScheduler, queries: int) -> list[float]:
    latencies = []
    for i in range(queries):
        started = time.perf_counter()
        await scheduler.embed_query([f"where is the keeper's logbook number {i}?"], tenant="tenant-b")
        latencies.append(time.perf_counter() - started)
    return latencies


async def measure(scheduler: QueryScheduler, *, flood_requests: int, queries: int) -> list[float]:
    stop = asyncio.Event()
    floods = [asyncio.create_task(flood(scheduler, stop)) for _ in range(flood_requests)]
    if floods:
        await asyncio.sleep(1.0)  # let the flood fill the queue before B asks
    latencies = await b_latencies(scheduler, queries)
    stop.set()
    await scheduler.stop()
    for task in floods:
        task.cancel()
    await asyncio.gather(*floods, return_exceptions=True)
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Row:
    name: str
    latencies: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)


async def run(args: argparse.Namespace) -> list[Row]:
    settings = load_settings({})
    embedder = OnnxEmbedder(settings.model_path / settings.embedding_model, threads=args.threads,
                            batch_size=settings.embed_batch_size)
    embedder.embed(a_texts(32))  # warm up
    batch = settings.embed_batch_size

    def fair() -> EmbeddingScheduler:
        return EmbeddingScheduler(embedder.embed, max_batch=batch, max_wait_s=0.0,
                                  max_waiting_per_tenant=settings.embed_tenant_queue_inputs)

    return [
        Row("alone (no flood)", await measure(fair(), flood_requests=0, queries=args.queries)),
        Row("flood, first come first served (before)", await measure(
            FirstComeFirstServed(embedder.embed, max_batch=batch), flood_requests=args.flood_requests,
            queries=args.queries)),
        Row("flood, fair turns (now)", await measure(fair(), flood_requests=args.flood_requests, queries=args.queries)),
    ]


def report(rows: list[Row], args: argparse.Namespace) -> str:
    alone, before, now = rows
    lines = [
        heading(SECTION_MARKER),
        "",
        f"Tenant A keeps {args.flood_requests} requests of {TEXTS_PER_REQUEST} texts queued at the embedding model"
        f" while tenant B sends {args.queries} one-text queries one after another (MiniLM int8, {args.threads}"
        " ONNX threads, in one process; B's latency is its query embedding's, what a flood delays).",
        "`just bench-fairness` (`tests/bench/fairness.py`); the baseline (first come, first served, how queries"
        " were queued before) and the fair scheduler are measured in the same run.",
        "",
        "| B's query | p50 (ms) | p95 (ms) | p50 vs alone |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        lines.append(f"| {row.name} | {row.p50 * 1000:.0f} | {row.p95 * 1000:.0f} | {row.p50 / alone.p50:.1f}x |")
    lines += [
        "",
        f"Under the flood, fair turns make B's p50 {before.p50 / now.p50:.0f}x and p95 {before.p95 / now.p95:.0f}x"
        " lower than first come, first served: B's text goes into the next model call instead of after"
        " every text A queued before it.",
        "What remains: B still waits for the call running when it arrives, then rides in a full call that"
        " A's texts fill up, so its latency is about two model calls rather than one text's (the integration"
        " test `tests/integration/test_embed_fairness.py` counts those calls).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--flood-requests", type=int, default=4)
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None, help="replace this benchmark's section of the file")
    args = parser.parse_args()
    rows = asyncio.run(run(args))
    section = report(rows, args)
    print(section)
    if args.write is not None:
        write_section(args.write, section, SECTION_MARKER)


if __name__ == "__main__":
    main()
