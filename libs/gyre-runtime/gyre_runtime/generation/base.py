"""The Generator port: chat turns and sampling parameters in, a stream of text deltas out, whatever runs the model.

Sampling parameters are ``gyre_contracts.SamplingParams``, the type ``GenerationRequested`` carries
on the bus. There is no engine-side copy of it: a second struct with the same six fields would only
be converted field by field and drift. The generate service checks a request's parameters against
the model (``gyre_generate.limits``) and hands the same type on; each backend translates it once,
where it calls its engine (onnxruntime-genai search options, Triton inputs, an OpenAI request body).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from gyre_contracts import SamplingParams

ChatTurn = tuple[str, str]  # (role, content); role is system, user or assistant


class GenerationError(RuntimeError):
    """The backend failed (unreachable, refused, crashed); the message says which and why."""


class GenerationStream(Protocol):
    """Async iterator of text deltas. When it ends: ``prompt_tokens``, ``completion_tokens`` and
    ``finish_reason`` ("stop", "length", "cancelled" or "error"). ``aclose`` cancels the generation."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def completion_tokens(self) -> int: ...
    @property
    def finish_reason(self) -> str | None: ...
    def __aiter__(self) -> AsyncIterator[str]: ...
    async def __anext__(self) -> str: ...
    async def aclose(self) -> None: ...


class Generator(Protocol):
    @property
    def version(self) -> str:
        """What GenerationCompleted records as the model version, e.g. ``smollm2-135m-instruct:1:ab12cd34ef56``."""
        ...

    @property
    def context_length(self) -> int: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the model (an estimate where the backend has no tokenizer here)."""
        ...

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> GenerationStream:
        """Starts when first iterated (inside the event loop that reads it)."""
        ...

    async def close(self) -> None: ...
