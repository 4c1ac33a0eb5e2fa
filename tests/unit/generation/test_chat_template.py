"""Chat turns to prompt text, per template named in a model's manifest."""

from __future__ import annotations

import pytest

from gyre_runtime.generation.chat_template import format_chatml, format_gemma, format_prompt

CAPITAL = [("user", "What is the capital of France?")]
CONVERSATION = [
    ("system", "Answer briefly."),
    ("user", "What is the capital of France?"),
    ("assistant", "Paris."),
    ("user", "And of Italy?"),
]


def test_chatml_opens_the_assistant_turn_and_adds_no_system_prompt() -> None:
    assert format_prompt("chatml", CAPITAL) == (
        "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert format_prompt("chatml", CONVERSATION) == format_chatml(CONVERSATION)


def test_gemma_names_the_assistant_model_and_opens_its_turn() -> None:
    assert format_prompt("gemma", CAPITAL) == (
        "<bos><start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma_puts_the_system_text_into_the_first_user_turn_only() -> None:
    assert format_gemma(CONVERSATION) == (
        "<bos><start_of_turn>user\nAnswer briefly.\n\nWhat is the capital of France?<end_of_turn>\n"
        "<start_of_turn>model\nParis.<end_of_turn>\n"
        "<start_of_turn>user\nAnd of Italy?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_system_text_without_a_user_turn_becomes_one() -> None:
    assert format_gemma([("system", "Say hello.")]) == (
        "<bos><start_of_turn>user\nSay hello.<end_of_turn>\n<start_of_turn>model\n"
    )


def test_only_gemma_starts_with_a_bos_token_which_onnxruntime_genai_would_not_add() -> None:
    assert format_prompt("gemma", CAPITAL).startswith("<bos><start_of_turn>")
    assert format_prompt("chatml", CAPITAL).startswith("<|im_start|>")  # SmolLM2 takes no BOS


def test_an_unknown_template_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown chat template 'llama3'; known: chatml, gemma"):
        format_prompt("llama3", CAPITAL)
