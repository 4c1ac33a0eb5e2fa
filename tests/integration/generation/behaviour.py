"""What every Generator backend must do: one suite, subclassed once per backend (onnx, triton, openai).

Fixture contract. A backend's test module subclasses ``GeneratorBehaviour`` (as ``Test<Backend>``)
and provides:

- ``generator``: a ready ``Generator`` on a real model (any scope; the suite never closes it).
  Tests run on pytest-asyncio's session loop, so an async fixture wants ``loop_scope="session"``.
- ``unreachable_generator``: only for a ``RemoteGeneratorBehaviour`` (the model runs in another
  process reached over the network). A plain (synchronous) fixture returning the same backend
  pointed at an address where nothing listens; the test closes it.

Class attributes say what the backend guarantees, and the tests branch on them instead of skipping:

- ``deterministic_with_seed``: the same seed and inputs give the same text when sampling
  (temperature > 0). True for onnxruntime-genai; for a remote server it depends on the server.
- ``max_tokens_tolerance``: how many tokens ``completion_tokens`` may exceed ``max_tokens`` by,
  for a backend that counts tokens differently from the model that generated them (e.g. an
  estimate); 0 for backends that report the model's own count.

The model is expected to be SmolLM2-135M-Instruct or better: the greedy answer to "What is the
capital of France?" must contain "Paris". Timings are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from gyre_contracts import SamplingParams
from gyre_runtime.generation import ChatTurn, GenerationError, GenerationStream, Generator
from tests.support.models import GENERATOR, built_models

MODEL = GENERATOR
SYSTEM: ChatTurn = ("system", "You are a helpful assistant. Answer briefly and accurately.")
CAPITAL = [SYSTEM, ("user", "What is the capital of France?")]
# Long enough that SmolLM2 never ends it by itself within the max_tokens used here.
STORY = [SYSTEM, ("user", "Write a long story about a dragon.")]
STREAM_TIMEOUT_S = 120.0


def generation_model_dir() -> Path:
    """The built SmolLM2 every backend serves."""
    return built_models(MODEL) / MODEL


async def collect(stream: GenerationStream) -> list[str]:
    async with asyncio.timeout(STREAM_TIMEOUT_S):
        return [delta async for delta in stream]


async def generate(generator: Generator, messages: Sequence[ChatTurn], params: SamplingParams) -> str:
    return "".join(await collect(generator.stream(messages, params)))


def stop_word_of(text: str) -> str:
    """A word from the middle of ``text`` (4+ letters, not at the very start), to use as a stop sequence."""
    words = [w.strip(",.;:!?\"'()") for w in text.split()]
    for word in words[3:]:
        if len(word) >= 4 and word.isalpha() and text.index(word) > 0:
            return word
    raise AssertionError(f"no usable stop word in {text!r}")


class GeneratorBehaviour:
    deterministic_with_seed: bool = True
    max_tokens_tolerance: int = 0

    async def test_a_greedy_answer_to_a_simple_question_is_right(self, generator: Generator) -> None:
        text = await generate(generator, CAPITAL, SamplingParams(max_tokens=32))
        assert "Paris" in text, text

    async def test_an_answer_streams_in_several_deltas_then_reports_its_end_and_token_counts(
        self, generator: Generator
    ) -> None:
        params = SamplingParams(max_tokens=64)
        stream = generator.stream(STORY, params)
        started = time.perf_counter()
        first_delta_at: float | None = None
        deltas: list[str] = []
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            async for delta in stream:
                first_delta_at = first_delta_at or time.perf_counter()
                deltas.append(delta)
        ended = time.perf_counter()
        assert len(deltas) >= 3 and all(deltas), deltas
        assert stream.finish_reason in ("stop", "length")
        assert stream.prompt_tokens > 0
        assert 0 < stream.completion_tokens <= params.max_tokens + self.max_tokens_tolerance
        assert first_delta_at is not None
        decode_s = max(ended - first_delta_at, 1e-9)
        print(
            f"\n[{generator.version}] {stream.completion_tokens} tokens, "
            f"time to first delta {(first_delta_at - started) * 1000:.0f} ms, "
            f"{stream.completion_tokens / (ended - started):.1f} tokens/s overall, "
            f"{(stream.completion_tokens - 1) / decode_s:.1f} tokens/s after the first delta"
        )

    async def test_max_tokens_bounds_the_answer(self, generator: Generator) -> None:
        stream = generator.stream(STORY, SamplingParams(max_tokens=8))
        text = "".join(await collect(stream))
        assert text
        assert stream.finish_reason == "length"
        assert 0 < stream.completion_tokens <= 8 + self.max_tokens_tolerance

    async def test_a_stop_sequence_ends_the_text_just_before_it(self, generator: Generator) -> None:
        # Greedy decoding is deterministic, so the stopped answer is a prefix of the unstopped one.
        full = await generate(generator, STORY, SamplingParams(max_tokens=40))
        stop = stop_word_of(full)
        stream = generator.stream(STORY, SamplingParams(max_tokens=40, stop=(stop, "never-seen-stop")))
        text = "".join(await collect(stream))
        assert text == full[: full.index(stop)], (stop, full, text)
        assert stop not in text
        assert stream.finish_reason == "stop"

    async def test_the_same_seed_gives_the_same_sampled_text_where_the_backend_guarantees_it(
        self, generator: Generator
    ) -> None:
        params = SamplingParams(max_tokens=24, temperature=0.9, top_p=0.95, seed=1234)
        first = await generate(generator, STORY, params)
        second = await generate(generator, STORY, params)
        assert first and second
        if self.deterministic_with_seed:
            assert first == second
        else:
            print(f"\n[{generator.version}] no seed guarantee; same text: {first == second}")

    async def test_aclose_mid_stream_cancels_the_generation(self, generator: Generator) -> None:
        stream = generator.stream(STORY, SamplingParams(max_tokens=200))
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            received = [await anext(stream), await anext(stream)]
            await stream.aclose()
            rest = [delta async for delta in stream]
        assert all(received) and rest == []
        assert stream.finish_reason == "cancelled"
        assert stream.completion_tokens < 200
        # The backend is free again: a new request is served at once, not after the cancelled one.
        assert await generate(generator, CAPITAL, SamplingParams(max_tokens=4))

    async def test_two_concurrent_streams_interleave_without_head_of_line_blocking(self, generator: Generator) -> None:
        started = time.perf_counter()

        async def timed(messages: Sequence[ChatTurn]) -> tuple[GenerationStream, float, float, str]:
            stream = generator.stream(messages, SamplingParams(max_tokens=40))
            first_delta_at = 0.0
            parts: list[str] = []
            async with asyncio.timeout(STREAM_TIMEOUT_S):
                async for delta in stream:
                    first_delta_at = first_delta_at or time.perf_counter() - started
                    parts.append(delta)
            return stream, first_delta_at, time.perf_counter() - started, "".join(parts)

        results = await asyncio.gather(timed(STORY), timed([SYSTEM, ("user", "Describe the sea in detail.")]))
        for stream, _, _, text in results:
            assert text and stream.finish_reason in ("stop", "length")
        firsts = [first for _, first, _, _ in results]
        ends = [end for _, _, end, _ in results]
        print(
            f"\n[{generator.version}] first deltas at {[round(f, 3) for f in firsts]} s, "
            f"ends at {[round(e, 3) for e in ends]} s"
        )
        # Each stream had started before the other one finished: they ran side by side.
        assert max(firsts) < min(ends)


class RemoteGeneratorBehaviour(GeneratorBehaviour):
    """A backend whose model runs in another process, reached over the network: it can be unreachable."""

    async def test_an_unreachable_backend_raises_generation_error(self, unreachable_generator: Generator) -> None:
        try:
            with pytest.raises(GenerationError) as raised:
                await generate(unreachable_generator, CAPITAL, SamplingParams(max_tokens=4))
        finally:
            await unreachable_generator.close()
        assert str(raised.value)
