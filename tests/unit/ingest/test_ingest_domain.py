"""Ingest's domain functions: decoding, normalising, checking and chunking."""

from __future__ import annotations

import base64

import pytest
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from gyre_ingest.checks import check_document
from gyre_ingest.chunking import chunk_text
from gyre_ingest.normalise import ContentError, decode_content, normalise_text


def word_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def test_base64_content_is_decoded_as_utf8() -> None:
    content = base64.b64encode("héllo wörld".encode()).decode()
    assert decode_content(None, content, "text/markdown; charset=utf-8") == "héllo wörld"


@pytest.mark.parametrize(
    ("text", "content", "content_type", "code"),
    [
        ("x", None, "application/pdf", "unsupported_type"),
        (None, None, "text/plain", "bad_request"),
        ("x", "eA==", "text/plain", "bad_request"),
        (None, "not base64!", "text/plain", "undecodable"),
        (None, base64.b64encode(b"\xff\xfe\xfa").decode(), "text/plain", "undecodable"),
    ],
)
def test_undecodable_or_unsupported_content_is_a_named_error(
    text: str | None, content: str | None, content_type: str, code: str
) -> None:
    with pytest.raises(ContentError) as caught:
        decode_content(text, content, content_type)
    assert caught.value.code == code


def test_normalising_removes_control_characters_and_extra_whitespace() -> None:
    raw = "Cafe\u0301\r\n\r\n\r\n\r\nline\x00 two\t\t  words  \x07\n"
    assert normalise_text(raw) == "Café\n\nline two words"


def test_empty_and_oversized_documents_are_rejected_with_reasons() -> None:
    assert [r.code for r in check_document("   ", 100)] == ["empty"]
    assert [r.code for r in check_document("x" * 101, 100)] == ["too_large"]
    assert check_document("fine", 100) == []


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
