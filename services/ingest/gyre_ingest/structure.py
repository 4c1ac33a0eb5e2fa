"""Structure-aware chunking: sections by heading, then blocks, sentences and pages, sized in embedding tokens."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from gyre_contracts import Chunk
from gyre_ingest.chunking import Tokenizer, chunk_text
from gyre_ingest.formats.base import Page
from gyre_ingest.packing import Emitter, Packer, TokenCounter, token_offsets
from gyre_ingest.sections import Block, parse_sections
from gyre_ingest.sentences import trim_span

Strategy = Literal["structure", "tokens"]


@dataclass(frozen=True)
class ChunkingConfig:
    """How a document is cut; sizes are in tokens of the embedding model's tokenizer (no special tokens)."""

    strategy: Strategy = "structure"
    size: int = 200  # hard maximum per chunk; leaves room in MiniLM's 254 for the heading prefix added at embed time
    overlap: int = 40  # "structure": whole trailing sentences carried into the next chunk of the same section
    min_size: int = 40  # "structure": a smaller open chunk is filled from an oversized next block, not left alone

    def __post_init__(self) -> None:
        if self.strategy not in ("structure", "tokens"):
            raise ValueError(f"strategy must be 'structure' or 'tokens', got {self.strategy!r}")
        if self.size <= 0 or not 0 <= self.overlap < self.size:
            raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={self.size} overlap={self.overlap}")
        if not 0 <= self.min_size <= self.size:
            raise ValueError(f"need 0 <= min_size <= size, got min_size={self.min_size} size={self.size}")


def chunk_document(
    text: str, tokenizer: Tokenizer, config: ChunkingConfig, pages: Sequence[Page] = ()
) -> list[Chunk]:
    """Cut ``text`` into chunks of at most ``config.size`` tokens, indexed 0..n-1 in document order.

    With "structure", a chunk lies inside one section (its heading path in ``heading_path``; heading
    lines themselves are not chunk text) and inside one page; ``text[c.start:c.end] == c.text``.
    """
    page_index = _PageIndex(pages)
    if config.strategy == "tokens":
        return [
            Chunk(
                index=c.index, text=c.text, start=c.start, end=c.end, token_count=c.token_count,
                page=page_index.number_at(c.start),
            )
            for c in chunk_text(text, tokenizer, config.size, config.overlap)
        ]

    counter = TokenCounter(token_offsets(text, tokenizer))
    emitter = Emitter(text, tokenizer, config.size)
    for section in parse_sections(text):
        for page, blocks in _split_by_page(text, section.blocks, page_index):
            emitter.heading_path, emitter.page = section.heading_path, page
            packer = Packer(text, tokenizer, config, counter, emitter.emit)
            for block in blocks:
                packer.add_block(block)
            packer.finish()
    return emitter.chunks()


# --- pages ---------------------------------------------------------------------------------------------


class _PageIndex:
    def __init__(self, pages: Sequence[Page]) -> None:
        self.pages = sorted(pages, key=lambda p: p.start)
        self.starts = [p.start for p in self.pages]
        # Every page edge inside a block cuts it, so no chunk spans two pages.
        self.edges = sorted({p.start for p in self.pages} | {p.end for p in self.pages})

    def number_at(self, position: int) -> int | None:
        i = bisect.bisect_right(self.starts, position) - 1
        return self.pages[i].number if i >= 0 and position < self.pages[i].end else None

    def cut(self, start: int, end: int) -> list[tuple[int, int]]:
        inside = self.edges[bisect.bisect_right(self.edges, start) : bisect.bisect_left(self.edges, end)]
        bounds = [start, *inside, end]
        return list(pairwise(bounds))


def _split_by_page(
    text: str, blocks: list[Block], pages: _PageIndex
) -> Iterator[tuple[int | None, list[Block]]]:
    """Runs of (pieces of) blocks that lie on one page, in order."""
    run: list[Block] = []
    run_page: int | None = None
    for block in blocks:
        for start, end in pages.cut(block.start, block.end):
            start, end = trim_span(text, start, end)
            if start >= end:
                continue
            piece = Block(block.kind, start, end, _items_within(block.item_starts, start, end))
            page = pages.number_at(start)
            if run and page != run_page:
                yield run_page, run
                run = []
            run.append(piece)
            run_page = page
    if run:
        yield run_page, run


def _items_within(item_starts: list[int], start: int, end: int) -> list[int]:
    if not item_starts:
        return []
    inside = [s for s in item_starts if start < s < end]
    return [start, *inside]
