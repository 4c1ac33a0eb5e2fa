"""Batched generation on the in-process onnxruntime-genai backend (og.Engine batches), with the real SmolLM2.

Concurrent requests share a batch; each still gets its own text, max_tokens, stop sequences and
cancellation, and a request arriving while a batch runs is served alongside it (a batch of its
own), not after it. Which batch a request joined is seen through `EngineBatch.add`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio

from gyre_contracts import SamplingParams
from gyre_runtime.config import load_settings
from gyre_runtime.generation import ChatTurn, onnx_lanes
from gyre_runtime.generation.onnx import OnnxGenaiBackend
from tests.integration.generation.behaviour import (
    CAPITAL,
    STORY,
    STREAM_TIMEOUT_S,
    SYSTEM,
    collect,
    generate,
    generation_model_dir,
    stop_word_of,
)

pytestmark = pytest.mark.models

QUESTIONS: list[list[ChatTurn]] = [
    CAPITAL,
    STORY,
    [SYSTEM, ("user", "Describe the sea in detail.")],
    [SYSTEM, ("user", "Why do cats purr?")],
]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def generator() -> AsyncIterator[OnnxGenaiBackend]:
    backend = OnnxGenaiBackend(generation_model_dir(), threads=load_settings({}).model_threads, max_active=8)
    yield backend
    await backend.close()


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> dict[onnx_lanes.EngineBatch, int]:
    """How many requests each og.Engine batch made during the test received (held, so none is
    freed and its successor counted under the same key)."""
    sizes: dict[onnx_lanes.EngineBatch, int] = {}
    add = onnx_lanes.EngineBatch.add

    def counted(self: onnx_lanes.EngineBatch, *args: Any) -> None:
        sizes[self] = sizes.get(self, 0) + 1
        add(self, *args)

    monkeypatch.setattr(onnx_lanes.EngineBatch, "add", counted)
    return sizes


def largest(batches: dict[onnx_lanes.EngineBatch, int]) -> int:
    return max(batches.values(), default=0)


async def alone(generator: OnnxGenaiBackend, messages: Sequence[ChatTurn], params: SamplingParams) -> str:
    return await generate(generator, messages, params)


async def test_concurrent_greedy_requests_give_the_text_each_gives_alone(
    generator: OnnxGenaiBackend, batches: dict[onnx_lanes.EngineBatch, int]
) -> None:
    params = SamplingParams(max_tokens=32)
    solo = [await alone(generator, q, params) for q in QUESTIONS]
    together = await asyncio.gather(*(generate(generator, q, params) for q in QUESTIONS))
    assert list(together) == solo
    assert largest(batches) >= 2, list(batches.values())  # requests shared an og.Engine batch


async def test_max_tokens_and_stop_sequences_hold_per_request_within_one_batch(
    generator: OnnxGenaiBackend, batches: dict[onnx_lanes.EngineBatch, int]
) -> None:
    full = await alone(generator, STORY, SamplingParams(max_tokens=40))
    stop = stop_word_of(full)
    streams = [
        generator.stream(STORY, SamplingParams(max_tokens=5)),
        generator.stream(STORY, SamplingParams(max_tokens=40, stop=(stop,))),
        generator.stream(STORY, SamplingParams(max_tokens=40)),
        generator.stream(STORY, SamplingParams(max_tokens=17)),
    ]
    short, stopped, whole, middle = ["".join(deltas) for deltas in await asyncio.gather(*(collect(s) for s in streams))]
    assert largest(batches) >= 2, list(batches.values())
    assert [s.finish_reason for s in streams] == ["length", "stop", "length", "length"]
    assert [streams[i].completion_tokens for i in (0, 2, 3)] == [5, 40, 17]
    assert whole == full
    assert stopped == full[: full.index(stop)]
    assert full.startswith(short) and full.startswith(middle) and len(short) < len(middle) < len(full)


async def test_cancelling_one_request_mid_batch_ends_only_it(
    generator: OnnxGenaiBackend, batches: dict[onnx_lanes.EngineBatch, int]
) -> None:
    params = SamplingParams(max_tokens=32)
    others = QUESTIONS[2:]
    solo = [await alone(generator, q, params) for q in others]
    doomed = generator.stream(STORY, SamplingParams(max_tokens=200))

    async def cancel_after_two() -> list[str]:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            received = [await anext(doomed), await anext(doomed)]
            await doomed.aclose()
            return received + [delta async for delta in doomed]

    results = await asyncio.gather(cancel_after_two(), *(generate(generator, q, params) for q in others))
    assert largest(batches) >= 2, list(batches.values())
    assert len(results[0]) == 2 and all(results[0])
    assert doomed.finish_reason == "cancelled" and doomed.completion_tokens < 200
    assert list(results[1:]) == solo


async def test_a_request_arriving_while_a_batch_runs_is_served_alongside_it(generator: OnnxGenaiBackend) -> None:
    params = SamplingParams(max_tokens=16)
    expected = await alone(generator, CAPITAL, params)
    long = generator.stream(STORY, SamplingParams(max_tokens=150))
    running = asyncio.Event()  # the long request's batch has stepped a few times
    ended: dict[str, float] = {}

    async def run_long() -> str:
        parts: list[str] = []
        async for delta in long:
            parts.append(delta)
            if len(parts) == 5:
                running.set()
        ended["long"] = time.perf_counter()
        return "".join(parts)

    async def arrive_late() -> str:
        await running.wait()
        text = await generate(generator, CAPITAL, params)
        ended["late"] = time.perf_counter()
        return text

    async with asyncio.timeout(STREAM_TIMEOUT_S):
        long_text, late_text = await asyncio.gather(run_long(), arrive_late())
    assert late_text == expected
    assert long_text and long.finish_reason in ("stop", "length")
    assert ended["late"] < ended["long"]  # not held back until the running batch ended


async def test_seeded_sampling_gives_the_same_text_alone_and_beside_a_batch(generator: OnnxGenaiBackend) -> None:
    seeded = SamplingParams(max_tokens=24, temperature=0.9, top_p=0.95, top_k=40, seed=99)
    first = await alone(generator, STORY, seeded)
    beside = await asyncio.gather(
        generate(generator, STORY, seeded), *(generate(generator, q, SamplingParams(max_tokens=24)) for q in QUESTIONS)
    )
    assert beside[0] == first
