"""Packing one section's blocks into chunks of at most ``size`` tokens, trailing sentences carried over."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

from gyre_contracts import Chunk
from gyre_ingest.chunking import Encoding, Tokenizer, chunk_text
from gyre_ingest.sections import Block, line_spans_within
from gyre_ingest.sentences import split_sentences, trim_span

if TYPE_CHECKING:
    from gyre_ingest.structure import ChunkingConfig

class TokenCounter:
    """Tokens of any span, from the token offsets of the whole text (no re-encoding while packing).

    Exact for spans cut at white space or punctuation (the tokenizer never joins across those), which is
    where blocks and sentences are cut; the emitter re-encodes every chunk, so any other cut is still safe.
    """

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        self.starts = [o[0] for o in offsets]
        self.ends = [o[1] for o in offsets]

    def __call__(self, start: int, end: int) -> int:
        return max(0, bisect.bisect_right(self.ends, end) - bisect.bisect_left(self.starts, start))


Span = tuple[int, int, tuple[str, ...], int | None]  # start, end, heading path, page


class Emitter:
    """Collects chunk spans, then re-encodes each so that none exceeds ``size`` tokens."""

    def __init__(self, text: str, tokenizer: Tokenizer, size: int) -> None:
        self.text, self.tokenizer, self.size = text, tokenizer, size
        self.spans: list[Span] = []
        self.heading_path: tuple[str, ...] = ()
        self.page: int | None = None

    def emit(self, start: int, end: int) -> None:
        start, end = trim_span(self.text, start, end)
        if start < end:
            self.spans.append((start, end, self.heading_path, self.page))

    def chunks(self) -> list[Chunk]:
        out: list[Chunk] = []
        encodings = _encode_all(self.tokenizer, [self.text[s:e] for s, e, _, _ in self.spans])
        for (start, end, path, page), encoding in zip(self.spans, encodings, strict=True):
            for s, e, tokens in self._fitted(start, end, encoding.offsets):
                out.append(
                    Chunk(index=len(out), text=self.text[s:e], start=s, end=e, token_count=tokens,
                          heading_path=path, page=page)
                )
        return out

    def _fitted(self, start: int, end: int, offsets: list[tuple[int, int]]) -> Iterator[tuple[int, int, int]]:
        cut = offsets[self.size - 1][1] if len(offsets) > self.size else 0
        if not 0 < cut < end - start:
            yield start, end, len(offsets)
            return
        # Only reached when a cut fell inside a word (token windows, page edges): cut again here.
        for s, e in ((start, start + cut), trim_span(self.text, start + cut, end)):
            if s < e:
                yield from self._fitted(s, e, self.tokenizer.encode(self.text[s:e], add_special_tokens=False).offsets)


def _encode_all(tokenizer: Tokenizer, texts: list[str]) -> list[Encoding]:
    """Encodings of ``texts``, in parallel through ``encode_batch`` when the tokenizer has it."""
    encode_batch = getattr(tokenizer, "encode_batch", None)
    if encode_batch is not None:
        return list(encode_batch(texts, add_special_tokens=False))
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


_PIECE_CHARS = 8192  # long enough that batching overhead is small, short enough to spread over cores


def token_offsets(text: str, tokenizer: Tokenizer) -> list[tuple[int, int]]:
    """Token offsets of the whole text, encoded in paragraph-aligned pieces so that cores share the work."""
    bounds = [0]
    while len(text) - bounds[-1] > _PIECE_CHARS:
        cut = text.find("\n\n", bounds[-1] + _PIECE_CHARS)
        if cut < 0:
            break
        bounds.append(cut + 1)  # both sides of a blank line are white space: no token spans it
    bounds.append(len(text))
    pieces = list(pairwise(bounds))
    offsets: list[tuple[int, int]] = []
    for (base, _), encoding in zip(pieces, _encode_all(tokenizer, [text[s:e] for s, e in pieces]), strict=True):
        offsets.extend((base + s, base + e) for s, e in encoding.offsets)
    return offsets


UnitKind = Literal["block", "sentence", "rigid"]


@dataclass
class _Unit:
    start: int
    end: int
    tokens: int
    kind: UnitKind  # "block": a whole block; "sentence": prose; "rigid": code lines, token windows
    block: Block | None = None


class Packer:
    """Packs the blocks of one section on one page into chunks, greedily, carrying trailing sentences over."""

    def __init__(
        self,
        text: str,
        tokenizer: Tokenizer,
        config: ChunkingConfig,
        count: TokenCounter,
        emit: Callable[[int, int], None],
    ) -> None:
        self.text, self.tokenizer, self.config, self.count, self.emit = text, tokenizer, config, count, emit
        self.units: list[_Unit] = []  # the open chunk: carried-over units first, then fresh ones
        self.tokens = 0
        self.fresh_units = 0
        self.fresh_tokens = 0

    def add_block(self, block: Block) -> None:
        size = self.config.size
        tokens = self.count(block.start, block.end)
        if self.tokens + tokens <= size:
            self._append(_Unit(block.start, block.end, tokens, "block", block))
            return
        # A block that fits a chunk alone is never split; an oversized one only waits for a fresh chunk
        # when the open chunk is already big enough to stand on its own.
        if self.fresh_units and (tokens <= size or self.fresh_tokens >= self.config.min_size):
            self._flush(carry=True)
        if tokens <= size:
            self._trim_carry(size - tokens)
            self._append(_Unit(block.start, block.end, tokens, "block", block))
            return
        for unit in self._split(block):
            self._add_unit(unit)

    def finish(self) -> None:
        self._flush(carry=False)

    def _add_unit(self, unit: _Unit) -> None:
        size = self.config.size
        if self.tokens + unit.tokens <= size:
            self._append(unit)
            return
        if unit.tokens > size:
            # One sentence (or code line) too long for any chunk: token windows, the last one left open.
            self._flush(carry=False)
            windows = chunk_text(self.text[unit.start : unit.end], self.tokenizer, size, self.config.overlap)
            for window in windows[:-1]:
                self.emit(unit.start + window.start, unit.start + window.end)
            if windows:
                last = windows[-1]
                self._append(_Unit(unit.start + last.start, unit.start + last.end, last.token_count, "rigid"))
            return
        if self.fresh_units:
            self._flush(carry=True)
        self._trim_carry(size - unit.tokens)
        self._append(unit)

    def _append(self, unit: _Unit) -> None:
        self.units.append(unit)
        self.tokens += unit.tokens
        self.fresh_units += 1
        self.fresh_tokens += unit.tokens

    def _flush(self, carry: bool) -> None:
        if self.fresh_units:
            self.emit(self.units[0].start, self.units[-1].end)
        self.units = self._carry() if carry and self.fresh_units else []
        self.tokens = sum(u.tokens for u in self.units)
        self.fresh_units = self.fresh_tokens = 0

    def _carry(self) -> list[_Unit]:
        """Whole trailing sentences of the chunk just emitted, up to ``overlap`` tokens, never all of it."""
        carried: list[_Unit] = []
        budget = self.config.overlap
        for unit in reversed(self.units):
            sentences = self._sentences(unit)
            if sentences is None:
                break  # code and token windows are not carried: they would start the next chunk mid-block
            for sentence in reversed(sentences):
                if sentence.tokens > budget or sentence.start <= self.units[0].start:
                    return carried[::-1]
                carried.append(sentence)
                budget -= sentence.tokens
        return carried[::-1]

    def _trim_carry(self, room: int) -> None:
        while self.units and self.tokens > room:
            self.tokens -= self.units.pop(0).tokens

    def _sentences(self, unit: _Unit) -> list[_Unit] | None:
        if unit.kind == "sentence":
            return [unit]
        if unit.kind == "rigid" or unit.block is None or unit.block.kind == "code":
            return None
        return self._split(unit.block)

    def _split(self, block: Block) -> list[_Unit]:
        """A block as its smallest packable units: sentences (per list item), or lines of code."""
        if block.kind == "code":
            return [
                _Unit(start, end, self.count(start, end), "rigid")
                for start, end in line_spans_within(self.text, block.start, block.end)
            ]
        items = block.item_starts or [block.start]
        bounds = [*items, block.end]
        return [
            _Unit(start, end, self.count(start, end), "sentence")
            for item_start, item_end in pairwise(bounds)
            for start, end in split_sentences(self.text, item_start, item_end)
        ]
