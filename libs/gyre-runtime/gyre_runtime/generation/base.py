"""The Generator port: chat turns in, a stream of text deltas out, whatever runs the model."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import msgspec

ChatTurn = tuple[str, str]  # (role, content); role is system, user or assistant


class GenerationParams(msgspec.Struct, frozen=True, kw_only=True):
    max_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()


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

    def stream(self, messages: Sequence[ChatTurn], params: GenerationParams) -> GenerationStream: ...

    async def close(self) -> None: ...
