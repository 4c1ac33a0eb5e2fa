"""The embedding scheduler batches bulk texts across callers and serves queries first."""

from __future__ import annotations

import asyncio
import threading

from gyre_embed.batching import EmbeddingScheduler


class RecordingModel:
    """Stands in for the ONNX model: a vector per text that encodes the text, and a call log."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[list[str]] = []
        self.gate = gate

    def __call__(self, texts: list[str]) -> list[list[float]]:
        if self.gate is not None:
            self.gate.wait(5)
        self.calls.append(list(texts))
        return [[float(len(t)), float(hash(t) % 1000)] for t in texts]


async def test_texts_from_many_callers_share_batches_and_come_back_in_order() -> None:
    model = RecordingModel()
    scheduler = EmbeddingScheduler(model, max_batch=8, max_wait_s=0.05)
    inputs = [[f"doc{d}-chunk{c}" + "x" * c for c in range(3)] for d in range(6)]
    results = await asyncio.gather(*(scheduler.embed_bulk(texts) for texts in inputs))
    await scheduler.stop()
    for texts, vectors in zip(inputs, results, strict=True):
        assert vectors == [[float(len(t)), float(hash(t) % 1000)] for t in texts]
    assert len(model.calls) == 3  # 18 texts in batches of at most 8
    assert all(len(call) <= 8 for call in model.calls)


async def test_a_query_is_served_before_queued_bulk_batches() -> None:
    gate = threading.Event()
    model = RecordingModel(gate)
    scheduler = EmbeddingScheduler(model, max_batch=4, max_wait_s=0.0)
    bulk = asyncio.gather(*(scheduler.embed_bulk([f"b{i}-{j}" for j in range(4)]) for i in range(3)))
    await asyncio.sleep(0.05)  # the first bulk batch is now blocked in the model
    query = asyncio.create_task(scheduler.embed_query(["the question"]))
    await asyncio.sleep(0.05)
    gate.set()
    await asyncio.gather(bulk, query)
    await scheduler.stop()
    assert model.calls[1] == ["the question"]  # right after the batch that was already running


async def test_a_model_failure_reaches_the_callers_of_that_batch() -> None:
    def broken(texts: list[str]) -> list[list[float]]:
        raise RuntimeError("onnx failed")

    scheduler = EmbeddingScheduler(broken, max_batch=4, max_wait_s=0.0)
    outcome = await asyncio.gather(scheduler.embed_bulk(["a", "b"]), return_exceptions=True)
    await scheduler.stop()
    assert isinstance(outcome[0], RuntimeError)
