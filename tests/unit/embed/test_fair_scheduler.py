"""Tenants take turns at the embedding model: no tenant's flood delays another's queries by more than a call."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from gyre_embed.batching import EmbeddingScheduler, TenantQueueFull

T = TypeVar("T")

WAIT_S = 10.0  # bound on any single wait; each normally takes milliseconds


class SteppedModel:
    """Stands in for the ONNX model; each call blocks until the test lets it through, so the test decides
    what is queued while a call runs. A text's vector encodes the text, so results can be checked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._entered = threading.Semaphore(0)
        self._permits = threading.Semaphore(0)

    def __call__(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        self._entered.release()
        if not self._permits.acquire(timeout=WAIT_S):
            raise RuntimeError("the test never let this call through")
        return [vector_of(t) for t in texts]

    async def entered(self) -> None:
        """Wait until a call is inside the model."""
        assert await asyncio.to_thread(self._entered.acquire, True, WAIT_S), "no model call started"

    def let_through(self, calls: int = 1) -> None:
        for _ in range(calls):
            self._permits.release()

    def release_all(self) -> None:
        self.let_through(1000)


@pytest.fixture
def model() -> Iterator[SteppedModel]:
    stepped = SteppedModel()
    yield stepped
    stepped.release_all()  # a test that failed half-way leaves no model call blocked


def vector_of(text: str) -> list[float]:
    return [float(len(text)), float(sum(map(ord, text)))]


def texts(tenant: str, request: int, count: int) -> list[str]:
    return [f"{tenant}{request}-{i}" for i in range(count)]


def tenant_of(text: str) -> str:
    return text[0]


async def inside_model(model: SteppedModel, call: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """The call in a task, once its first model call is inside the model (held there until let through)."""
    task = asyncio.create_task(call)
    await model.entered()
    return task


async def enqueued(call: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """The call in a task, once it waits in the scheduler's queues."""
    task = asyncio.create_task(call)
    await asyncio.sleep(0)
    return task


async def finish(model: SteppedModel, scheduler: EmbeddingScheduler, *pending: Awaitable[Any]) -> list[Any]:
    model.release_all()
    results = await asyncio.wait_for(asyncio.gather(*pending), WAIT_S)
    await scheduler.stop()
    return results


async def test_a_tenants_search_goes_into_the_next_call_while_another_tenant_floods(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=8, max_wait_s=0.0)
    flood = [asyncio.create_task(scheduler.embed_request(texts("A", r, 64), tenant="a")) for r in range(4)]
    await model.entered()  # A's first call runs; 248 of A's texts wait behind it
    search = await enqueued(scheduler.embed_query(["B-lighthouse"], tenant="b"))
    model.let_through()
    await model.entered()
    assert "B-lighthouse" in model.calls[1]  # the very next call, not after A's other 31 calls
    results = await finish(model, scheduler, search, *flood)
    assert results[0] == [vector_of("B-lighthouse")]
    for r, vectors in enumerate(results[1:]):
        assert vectors == [vector_of(t) for t in texts("A", r, 64)]  # pieces reassembled in order


async def test_waiting_tenants_share_each_call_in_turns_of_the_quantum(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=6, max_wait_s=0.0, quantum=2)
    first = await inside_model(model, scheduler.embed_request(["X-first"], tenant="x"))
    pending = [
        asyncio.create_task(scheduler.embed_request(texts("A", 0, 12), tenant="a")),
        asyncio.create_task(scheduler.embed_request(texts("B", 0, 12), tenant="b")),
        asyncio.create_task(scheduler.embed_request(texts("C", 0, 3), tenant="c")),
    ]
    await asyncio.sleep(0)
    await finish(model, scheduler, first, *pending)
    owners = ["".join(tenant_of(t) for t in call) for call in model.calls[1:]]
    assert owners[:2] == ["AABBCC", "AABBCA"]  # C's last text, then A goes on with the rest of its turn
    assert all(len(call) <= 6 for call in model.calls)
    assert sorted("".join(owners)) == sorted("A" * 12 + "B" * 12 + "C" * 3)


async def test_a_tenants_own_search_is_not_stuck_behind_its_own_large_request(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=8, max_wait_s=0.0, quantum=4)
    batch = await inside_model(model, scheduler.embed_request(texts("A", 0, 200), tenant="a"))
    search = await enqueued(scheduler.embed_query(["A-own-search"], tenant="a"))
    model.let_through()
    await model.entered()
    assert "A-own-search" in model.calls[1]
    await finish(model, scheduler, batch, search)


async def test_queries_of_every_tenant_still_go_before_bulk_indexing(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=4, max_wait_s=0.0)
    bulk = await inside_model(model, scheduler.embed_bulk(texts("I", 0, 12), tenant="a"))
    query = await enqueued(scheduler.embed_query(["B-question"], tenant="b"))
    await finish(model, scheduler, bulk, query)
    assert model.calls[1] == ["B-question"]


async def test_bulk_indexing_takes_turns_between_tenants_too(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=4, max_wait_s=0.0, quantum=2)
    first = await inside_model(model, scheduler.embed_bulk(["X-first"], tenant="x"))
    big = asyncio.create_task(scheduler.embed_bulk(texts("A", 0, 40), tenant="a"))
    small = await enqueued(scheduler.embed_bulk(texts("B", 0, 2), tenant="b"))
    await finish(model, scheduler, first, big, small)
    assert [tenant_of(t) for t in model.calls[1]] == ["A", "A", "B", "B"]


async def test_a_tenant_past_its_bound_is_refused_with_a_retry_hint_while_others_are_served(
    model: SteppedModel,
) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=4, max_wait_s=0.0, max_waiting_per_tenant=16)
    running = await inside_model(model, scheduler.embed_request(texts("A", 0, 4), tenant="a"))
    queued = await enqueued(scheduler.embed_request(texts("A", 1, 16), tenant="a"))
    assert scheduler.waiting("a") == 16
    with pytest.raises(TenantQueueFull) as refused:
        await scheduler.embed_request(texts("A", 2, 1), tenant="a")
    assert refused.value.retry_after_s >= 1 and refused.value.limit == 16
    assert "tenant 'a'" in str(refused.value) and "retry after" in str(refused.value)
    others = asyncio.create_task(scheduler.embed_request(texts("B", 0, 16), tenant="b"))
    own_search = asyncio.create_task(scheduler.embed_query(["A-search"], tenant="a"))  # searches are never refused
    await asyncio.sleep(0)
    results = await finish(model, scheduler, running, queued, others, own_search)
    assert len(results[2]) == 16 and results[3] == [vector_of("A-search")]
    assert scheduler.stats.refused_requests == 1


async def test_a_request_larger_than_the_bound_is_taken_when_its_tenant_has_nothing_waiting(
    model: SteppedModel,
) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=8, max_wait_s=0.0, max_waiting_per_tenant=4)
    large = asyncio.create_task(scheduler.embed_request(texts("A", 0, 10), tenant="a"))
    (vectors,) = await finish(model, scheduler, large)
    assert len(vectors) == 10


async def test_the_retry_hint_grows_with_what_the_tenant_has_waiting(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=4, max_wait_s=0.0, max_waiting_per_tenant=10_000)
    running = await inside_model(model, scheduler.embed_request(["A-first"], tenant="a"))
    small = scheduler.retry_after_s("a")
    queued = await enqueued(scheduler.embed_request(texts("A", 1, 2_000), tenant="a"))
    assert scheduler.retry_after_s("a") > small
    await finish(model, scheduler, running, queued)


async def test_stopping_fails_every_waiting_request(model: SteppedModel) -> None:
    scheduler = EmbeddingScheduler(model, max_batch=2, max_wait_s=0.0)
    running = await inside_model(model, scheduler.embed_request(texts("A", 0, 2), tenant="a"))
    waiting = await enqueued(scheduler.embed_query(["B-q"], tenant="b"))
    model.release_all()
    await scheduler.stop()
    outcome = await asyncio.wait_for(asyncio.gather(running, waiting, return_exceptions=True), WAIT_S)
    assert [str(o) for o in outcome] == ["embedding scheduler stopped"] * 2  # none is left waiting for ever


async def test_query_calls_use_the_query_function_and_bulk_calls_the_batch_one() -> None:
    """Queries go to a function whose vectors do not depend on the batch (the int8 model's do)."""
    used: list[str] = []

    def batch_fn(texts: list[str]) -> list[list[float]]:
        used.append("batch")
        return [[1.0] for _ in texts]

    def each_fn(texts: list[str]) -> list[list[float]]:
        used.append("each")
        return [[2.0] for _ in texts]

    scheduler = EmbeddingScheduler(batch_fn, max_batch=8, max_wait_s=0.0, embed_queries=each_fn)
    try:
        assert await scheduler.embed_query(["q"], tenant="t") == [[2.0]]
        assert await scheduler.embed_bulk(["c1", "c2"], tenant="t") == [[1.0], [1.0]]
        assert await scheduler.embed_request(["e"], tenant="t") == [[2.0]]
    finally:
        await scheduler.stop()
    assert used == ["each", "batch", "each"]
