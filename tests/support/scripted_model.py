"""A scripted Generator for bus-level tests of the generate service: it answers what it is told, word by word."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence

from gyre_contracts import SamplingParams
from gyre_runtime.generation import ChatTurn, GenerationStream


def count_words(text: str) -> int:
    """The scripted model's token count: one token a word (tests of token budgets use it too)."""
    return len(text.split())


class ScriptedStream:
    """Yields the scripted answer word by word, ``delay_s`` apart; closes like a real backend."""

    def __init__(self, words: list[str], delay_s: float) -> None:
        self._words = words
        self._delay_s = delay_s
        self._sent = 0
        self._reason: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return 10

    @property
    def completion_tokens(self) -> int:
        return self._sent

    @property
    def finish_reason(self) -> str | None:
        return self._reason

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._reason is not None:
            raise StopAsyncIteration
        if self._sent >= len(self._words):
            self._reason = "stop"
            raise StopAsyncIteration
        await asyncio.sleep(self._delay_s)
        self._sent += 1
        return self._words[self._sent - 1]

    async def aclose(self) -> None:
        self._reason = self._reason or "cancelled"


class ScriptedModel:
    """A Generator: answers with ``answer`` (or ``max_tokens`` words when the question says "long")."""

    def __init__(self, answer: str = "Mira Castellane invented it [1].") -> None:
        self.prompts: list[list[ChatTurn]] = []
        self.params: list[SamplingParams] = []
        self.answer = answer
        self.delay_s = 0.001  # per word

    @property
    def asked(self) -> list[str]:
        """The last turn of every prompt so far."""
        return [prompt[-1][1] for prompt in self.prompts]

    @property
    def version(self) -> str:
        return "scripted:1"

    @property
    def context_length(self) -> int:
        return 2048

    def count_tokens(self, text: str) -> int:
        return count_words(text)

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> GenerationStream:
        self.prompts.append(list(messages))
        self.params.append(params)
        if "long" in messages[-1][1]:
            return ScriptedStream(["word "] * params.max_tokens, 0.01)
        return ScriptedStream(re.findall(r"\S+\s*", self.answer), self.delay_s)

    async def close(self) -> None:
        return None
