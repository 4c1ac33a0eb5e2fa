"""Relevance of what was retrieved, fixed answers streamed by words, and cancelling generations in flight."""

from __future__ import annotations

import asyncio

import pytest

from gyre_contracts import RetrievedChunk
from gyre_generate.answer import words_of
from gyre_generate.retrieval import Retrieval, is_relevant
from gyre_generate.running import RunningGenerations
from tests.support.scripted_model import ScriptedStream


def chunk(score: float) -> RetrievedChunk:
    return RetrievedChunk(document_id="d", chunk_id="c", version=1, index=0, score=score, text="t")


def test_relevance_is_judged_on_the_best_dense_similarity_not_the_fused_score() -> None:
    fused = (chunk(0.033),)  # a reciprocal-rank score: as high for any question
    assert is_relevant(Retrieval(fused, 0.55, 1.0), 0.2)
    assert not is_relevant(Retrieval(fused, 0.05, 1.0), 0.2)
    assert not is_relevant(Retrieval(fused, None, 1.0), 0.2)


def test_no_hits_are_never_relevant_and_a_zero_threshold_accepts_any_hit() -> None:
    assert not is_relevant(Retrieval((), 0.9, 1.0), 0.2)
    assert is_relevant(Retrieval((chunk(0.01),), None, 1.0), 0.0)


def test_a_fixed_answer_is_streamed_word_by_word_and_reassembles_exactly() -> None:
    text = "I don't know: none of the indexed documents answers that."
    pieces = words_of(text)
    assert "".join(pieces) == text and len(pieces) == len(text.split())
    assert words_of("") == [] and "".join(words_of("  a  b  ")) == "  a  b  "


def endless_stream() -> ScriptedStream:
    """A token every few milliseconds, more than any test here reads before it cancels."""
    return ScriptedStream(["x"] * 100_000, 0.002)


async def test_a_cancel_stops_the_running_generation_and_counts_it_out() -> None:
    running = RunningGenerations(capacity=8)
    stream = endless_stream()
    seen: list[str] = []

    async def read() -> None:
        async for delta in stream:
            seen.append(delta)
            if len(seen) == 5:
                assert running.cancel("r1", "tenant-a", "client disconnected")

    async with running.track("r1", "tenant-a") as run:
        assert running.in_flight == 1
        cancelled = await asyncio.wait_for(run.pump(stream, read()), 5)
    assert cancelled and run.cancel_reason == "client disconnected"
    assert stream.finish_reason == "cancelled" and len(seen) == 5 and running.in_flight == 0


async def test_a_cancel_from_another_tenant_is_ignored() -> None:
    running = RunningGenerations(capacity=8)
    async with running.track("r1", "tenant-a") as run:
        assert not running.cancel("r1", "tenant-b", "nope")
        assert not run.cancelled


async def test_a_cancel_that_comes_before_the_request_applies_when_it_starts() -> None:
    running = RunningGenerations(capacity=8)
    assert not running.cancel("r2", "tenant-a", "client disconnected")
    async with running.track("r2", "tenant-a") as run:
        assert run.cancelled
        stream = endless_stream()

        async def read() -> None:
            async for _ in stream:
                pass

        assert await run.pump(stream, read())
    assert stream.completion_tokens == 0


async def test_a_failing_stream_raises_from_pump() -> None:
    running = RunningGenerations(capacity=8)
    stream = endless_stream()

    async def read() -> None:
        raise RuntimeError("backend crashed")

    async with running.track("r3", "tenant-a") as run:
        with pytest.raises(RuntimeError, match="backend crashed"):
            await run.pump(stream, read())
    assert stream.finish_reason == "cancelled"
