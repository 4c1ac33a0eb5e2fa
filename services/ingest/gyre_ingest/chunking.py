"""Splitting text into overlapping windows measured in tokens of the embedding model."""

from __future__ import annotations

from typing import Any, Protocol

from gyre_contracts import Chunk


class Encoding(Protocol):
    @property
    def offsets(self) -> list[tuple[int, int]]: ...


class Tokenizer(Protocol):
    """What chunking needs of a tokenizer (``tokenizers.Tokenizer`` fits)."""

    def encode(
        self, sequence: Any, pair: Any = ..., is_pretokenized: bool = ..., add_special_tokens: bool = ...
    ) -> Encoding: ...


def chunk_text(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[Chunk]:
    """Windows of ``size`` tokens, each starting ``size - overlap`` tokens after the previous one.

    Chunk text is the exact slice of ``text`` its tokens cover, so offsets map back to the source.
    """
    if size <= 0 or not 0 <= overlap < size:
        raise ValueError(f"need size > 0 and 0 <= overlap < size, got size={size} overlap={overlap}")
    offsets = [o for o in tokenizer.encode(text, add_special_tokens=False).offsets if o[1] > o[0]]
    chunks: list[Chunk] = []
    step = size - overlap
    start_token = 0
    while start_token < len(offsets):
        window = offsets[start_token : start_token + size]
        start, end = window[0][0], window[-1][1]
        chunks.append(
            Chunk(index=len(chunks), text=text[start:end], start=start, end=end, token_count=len(window))
        )
        if start_token + size >= len(offsets):
            break
        start_token += step
    return chunks
