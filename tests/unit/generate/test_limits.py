"""Request limits: input length, and sampling parameters the model can honour (the service's own checks)."""

from __future__ import annotations

import pytest

from gyre_contracts import ChatMessage, SamplingParams
from gyre_generate.limits import (
    SEED_MODULUS,
    RequestRefused,
    check_fits_context,
    check_input_length,
    generation_params,
)
from tests.support.scripted_model import count_words


def test_sampling_parameters_reach_the_backend_unchanged() -> None:
    params = generation_params(
        SamplingParams(max_tokens=32, temperature=0.7, top_p=0.9, top_k=20, seed=42, stop=("\n\n", "")), 8192
    )
    assert (params.max_tokens, params.temperature, params.top_p, params.top_k, params.seed) == (32, 0.7, 0.9, 20, 42)
    assert params.stop == ("\n\n",)


def test_any_integer_seed_maps_to_the_same_32_bit_seed() -> None:
    big = generation_params(SamplingParams(seed=2**40 + 5), 8192)
    assert big.seed == (2**40 + 5) % SEED_MODULUS == generation_params(SamplingParams(seed=2**40 + 5), 8192).seed
    assert 0 <= generation_params(SamplingParams(seed=-1), 8192).seed < SEED_MODULUS  # type: ignore[operator]
    assert generation_params(SamplingParams(), 8192).seed is None


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (SamplingParams(max_tokens=0), "max_tokens must be at least 1"),
        (SamplingParams(max_tokens=8192), "leaves no room for the prompt"),
        (SamplingParams(temperature=-0.1), "temperature"),
        (SamplingParams(temperature=float("nan")), "temperature"),
        (SamplingParams(top_p=0.0), "top_p"),
        (SamplingParams(top_p=1.5), "top_p"),
        (SamplingParams(top_k=-1), "top_k"),
        (SamplingParams(stop=tuple(str(i) for i in range(17))), "stop sequences"),
        (SamplingParams(stop=("x" * 300,)), "stop sequence"),
    ],
)
def test_nonsense_parameters_are_refused_with_a_message_naming_them(params: SamplingParams, message: str) -> None:
    with pytest.raises(RequestRefused, match=message):
        generation_params(params, 8192)


def test_input_over_the_token_limit_is_refused() -> None:
    messages = (ChatMessage(role="user", content="word " * 11),)
    assert check_input_length(messages, count_words, 11) == 11
    with pytest.raises(RequestRefused, match="GYRE_MAX_INPUT_TOKENS"):
        check_input_length(messages, count_words, 10)


def test_a_prompt_and_answer_larger_than_the_context_are_refused() -> None:
    check_fits_context(100, 92, 192)
    with pytest.raises(RequestRefused, match="context of 192 tokens"):
        check_fits_context(101, 92, 192)
