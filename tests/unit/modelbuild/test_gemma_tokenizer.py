"""The SentencePiece BPE tokenizer rebuilt from a GGUF's tokens, scores and types (Gemma 3's layout),
on a vocabulary small enough to reason about."""

from __future__ import annotations

import pytest

from gyre_modelbuild.gemma3 import rebuild_tokenizer

# llama.cpp token types: 1 normal, 3 control, 4 user-defined, 6 byte.
SPECIAL = [("<pad>", 3), ("<eos>", 3), ("<bos>", 3), ("<unk>", 3), ("<start_of_turn>", 3), ("<end_of_turn>", 3)]
BYTES = [(f"<0x{b:02X}>", 6) for b in range(256)]
USER = [("\n", 4), ("  ", 4)]
# Normal pieces, best score first: "▁t" merges before "he", so "the" is not "t"+"he".
NORMAL = ["▁t", "he", "▁the", "▁c", "at", "▁cat", "▁", "t", "h", "e", "c", "a", "H", "i", "Hi", "!"]


def _fields(add_bos: bool = True) -> dict[str, object]:
    pieces = SPECIAL + BYTES + USER + [(p, 1) for p in NORMAL]
    scores = [0.0] * (len(SPECIAL) + len(BYTES) + len(USER)) + [-float(i) for i in range(len(NORMAL))]
    return {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [p for p, _ in pieces],
        "tokenizer.ggml.token_type": [t for _, t in pieces],
        "tokenizer.ggml.scores": scores,
        "tokenizer.ggml.bos_token_id": 2,
        "tokenizer.ggml.eos_token_id": 1,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.add_bos_token": add_bos,
        "tokenizer.ggml.add_space_prefix": False,
    }


@pytest.fixture(scope="module")
def tok():
    return rebuild_tokenizer(_fields())


def test_merges_follow_the_scores_and_no_bos_is_added(tok) -> None:
    # onnxruntime-genai never adds a BOS: the prompt carries "<bos>" as text, one special token.
    assert tok.encode("Hi the cat!").tokens == ["Hi", "▁the", "▁cat", "!"]
    assert tok.encode("<bos>Hi").ids[0] == 2


def test_user_defined_pieces_match_whole_and_control_tokens_are_special(tok) -> None:
    enc = tok.encode("<start_of_turn>  hi\n<end_of_turn>")
    assert enc.tokens == ["<start_of_turn>", "  ", "h", "i", "\n", "<end_of_turn>"]
    assert tok.decode(enc.ids) == "  hi\n"  # control tokens are skipped, user-defined ones are text


@pytest.mark.parametrize("text", ["Hi the cat!", " leading and  double spaces", "ünï 🎉\t\x01", "the\n\ncat"])
def test_unknown_characters_fall_back_to_bytes_and_round_trip(tok, text: str) -> None:
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_a_gguf_without_bos_is_refused() -> None:
    with pytest.raises(RuntimeError, match="BOS"):
        rebuild_tokenizer(_fields(add_bos=False))
