"""Coalesced TokenDeltas: the first at once, later ones grouped, nothing lost or reordered."""

from __future__ import annotations

import asyncio

from gyre_generate.delta_coalescer import DeltaCoalescer


async def test_the_first_piece_goes_at_once_and_the_rest_arrive_grouped_in_order() -> None:
    sent: list[tuple[int, str]] = []

    async def emit(index: int, text: str) -> None:
        sent.append((index, text))

    deltas = DeltaCoalescer(emit, 0.05, 256)
    pieces = [f"t{i} " for i in range(20)]
    await deltas.add(pieces[0])
    assert sent == [(0, "t0 ")]
    for piece in pieces[1:]:
        await deltas.add(piece)
    await deltas.close("")
    assert "".join(text for _, text in sent) == "".join(pieces)
    assert [index for index, _ in sent] == list(range(len(sent)))
    assert len(sent) < len(pieces)


async def test_held_text_is_sent_by_the_timer_without_more_tokens() -> None:
    sent: list[str] = []

    async def emit(index: int, text: str) -> None:
        sent.append(text)

    deltas = DeltaCoalescer(emit, 0.02, 256)
    await deltas.add("a")
    await deltas.add("b")
    assert sent == ["a"]
    await asyncio.sleep(0.1)
    assert sent == ["a", "b"]
    await deltas.close("")
