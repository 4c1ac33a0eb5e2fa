"""SwappableGenerator: a promotion replaces the model without dropping an answer in flight."""

from __future__ import annotations

import asyncio

from gyre_contracts import SamplingParams
from gyre_runtime.generation.swap import SwappableGenerator
from tests.support.scripted_model import ScriptedModel


class ClosingModel(ScriptedModel):
    def __init__(self, answer: str, name: str) -> None:
        super().__init__(answer)
        self.name = name
        self.closed = False

    @property
    def version(self) -> str:
        return f"{self.name}:1:000000000000"

    async def close(self) -> None:
        self.closed = True


async def read(stream: object) -> str:
    return "".join([delta async for delta in stream])  # type: ignore[attr-defined]


async def test_a_stream_started_before_the_swap_finishes_on_the_old_model() -> None:
    old, new = ClosingModel("old " * 30, "old"), ClosingModel("new answer", "new")
    old.delay_s = 0.005
    swappable = SwappableGenerator(old)
    params = SamplingParams(max_tokens=64)
    in_flight = swappable.stream([("user", "question")], params)
    first = await in_flight.__anext__()
    closing = swappable.swap(new)
    assert swappable.version == "new:1:000000000000"
    after = await read(swappable.stream([("user", "question")], params))
    rest = await read(in_flight)
    assert (first + rest).split() == ["old"] * 30  # the whole old answer, not cut by the swap
    assert after == "new answer"
    await asyncio.wait_for(closing, 5)
    assert old.closed and not new.closed
    assert swappable.draining == 0


async def test_the_old_model_stays_open_while_a_stream_on_it_runs() -> None:
    old, new = ClosingModel("a b c d e f", "old"), ClosingModel("x", "new")
    old.delay_s = 0.05
    swappable = SwappableGenerator(old)
    stream = swappable.stream([("user", "q")], SamplingParams(max_tokens=8))
    await stream.__anext__()
    swappable.swap(new)
    await asyncio.sleep(0.02)
    assert not old.closed and swappable.draining == 1
    await stream.aclose()  # a client that leaves: its slot is given back
    for _ in range(50):
        if old.closed:
            break
        await asyncio.sleep(0.01)
    assert old.closed and swappable.draining == 0


async def test_a_swap_with_nothing_in_flight_closes_the_old_model_at_once() -> None:
    old, new = ClosingModel("a", "old"), ClosingModel("b", "new")
    swappable = SwappableGenerator(old)
    await asyncio.wait_for(swappable.swap(new), 1)
    assert old.closed


async def test_close_closes_the_current_model_and_those_still_draining() -> None:
    old, new = ClosingModel("a b c d", "old"), ClosingModel("b", "new")
    old.delay_s = 0.05
    swappable = SwappableGenerator(old)
    stream = swappable.stream([("user", "q")], SamplingParams(max_tokens=8))
    await stream.__anext__()
    swappable.swap(new)
    await swappable.close()
    assert old.closed and new.closed
