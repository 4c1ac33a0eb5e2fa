"""Token-window chunking (the `tokens` strategy)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from gyre_ingest.chunking import chunk_text


def word_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def test_chunks_overlap_by_the_configured_number_of_tokens() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_text(text, word_tokenizer(), size=10, overlap=3)
    words = [c.text.split() for c in chunks]
    assert words[0] == [f"w{i}" for i in range(10)]
    assert words[1][:3] == words[0][-3:]
    assert [c.token_count for c in chunks] == [10, 10, 10, 4][: len(chunks)]
    assert words[-1][-1] == "w24"
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_a_short_text_is_one_chunk_and_empty_text_none() -> None:
    assert len(chunk_text("just a few words", word_tokenizer(), size=10, overlap=2)) == 1
    assert chunk_text("", word_tokenizer(), size=10, overlap=2) == []


def test_invalid_chunk_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_text("a b", word_tokenizer(), size=5, overlap=5)
