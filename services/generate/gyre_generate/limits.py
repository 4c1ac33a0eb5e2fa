"""What a request may ask for: input length and sampling parameters the model can honour.

The gateway validates requests in the OpenAI error format before they reach the bus; these checks
are the service's own, for requests from any publisher: nonsense becomes a GenerationFailed whose
message says what to change, never a crash or a retry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from gyre_contracts import ChatMessage, SamplingParams
from gyre_contracts.generate import FailureCode
from gyre_generate.prompting import TokenCounter

MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256
# onnxruntime-genai takes a 32-bit seed; any integer maps onto one, the same integer always onto the same.
SEED_MODULUS = 2**31


class RequestRefused(ValueError):
    """A request the service will not run as asked; the message is what GenerationFailed says, ``code`` its kind."""

    def __init__(self, message: str, code: FailureCode = "invalid_request") -> None:
        super().__init__(message)
        self.code: FailureCode = code


def input_tokens(messages: Sequence[ChatMessage], count_tokens: TokenCounter) -> int:
    return sum(count_tokens(m.content) for m in messages)


def check_input_length(messages: Sequence[ChatMessage], count_tokens: TokenCounter, max_input_tokens: int) -> int:
    """Tokens of all messages; RequestRefused when over ``max_input_tokens`` (GYRE_MAX_INPUT_TOKENS)."""
    tokens = input_tokens(messages, count_tokens)
    if tokens > max_input_tokens:
        raise RequestRefused(
            f"input too long: the messages have {tokens} tokens, the limit is {max_input_tokens} "
            "(GYRE_MAX_INPUT_TOKENS); shorten the question or the conversation",
            "context_length_exceeded",
        )
    return tokens


def generation_params(params: SamplingParams, context_length: int) -> SamplingParams:
    """A request's parameters as the backend gets them: checked against the model (RequestRefused names the
    first value out of range), the seed mapped onto 32 bits, empty stop sequences dropped."""
    if params.max_tokens < 1:
        raise RequestRefused(f"max_tokens must be at least 1, not {params.max_tokens}")
    if params.max_tokens >= context_length:
        raise RequestRefused(
            f"max_tokens {params.max_tokens} leaves no room for the prompt in the model's context of "
            f"{context_length} tokens; ask for fewer"
        )
    if not math.isfinite(params.temperature) or params.temperature < 0:
        raise RequestRefused(f"temperature must be a number >= 0 (0: greedy), not {params.temperature}")
    if not math.isfinite(params.top_p) or not 0 < params.top_p <= 1:
        raise RequestRefused(f"top_p must be in (0, 1], not {params.top_p}")
    if params.top_k < 0:
        raise RequestRefused(f"top_k must be >= 0 (0: no limit), not {params.top_k}")
    stop = tuple(s for s in params.stop if s)
    if len(stop) > MAX_STOP_SEQUENCES:
        raise RequestRefused(f"at most {MAX_STOP_SEQUENCES} stop sequences, not {len(stop)}")
    if any(len(s) > MAX_STOP_CHARS for s in stop):
        raise RequestRefused(f"a stop sequence may have at most {MAX_STOP_CHARS} characters")
    seed = None if params.seed is None else params.seed % SEED_MODULUS
    return msgspec.structs.replace(params, seed=seed, stop=stop)


def check_fits_context(fixed_prompt_tokens: int, max_tokens: int, context_length: int) -> None:
    """The prompt without sources plus the answer must fit the model's context window."""
    if fixed_prompt_tokens + max_tokens > context_length:
        raise RequestRefused(
            f"the conversation and instructions take {fixed_prompt_tokens} tokens and max_tokens asks for "
            f"{max_tokens}: more than the model's context of {context_length} tokens; lower max_tokens "
            "or shorten the conversation",
            "context_length_exceeded",
        )
