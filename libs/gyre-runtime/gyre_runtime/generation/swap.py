"""A Generator whose model can be replaced while it serves: how generate follows `generator@<alias>`.

A promotion must not drop a request. Each stream is bound, when it is created, to the model that
was current then, and keeps it to its end; `swap` makes a new model current for every later
stream and closes the old one only once the last stream started on it has ended (finished,
failed or cancelled). Both models are loaded at once for that while: a hot swap costs the memory
of two models for the length of the longest answer in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from gyre_contracts import SamplingParams
from gyre_runtime.generation.base import ChatTurn, GenerationStream, Generator
from gyre_runtime.logging import get_logger

log = get_logger()


class _Slot:
    """One loaded model and how many streams still use it."""

    __slots__ = ("drained", "generator", "streams")

    def __init__(self, generator: Generator) -> None:
        self.generator = generator
        self.streams = 0
        self.drained = asyncio.Event()
        self.drained.set()

    def acquire(self) -> None:
        self.streams += 1
        self.drained.clear()

    def release(self) -> None:
        self.streams -= 1
        if self.streams <= 0:
            self.streams = 0
            self.drained.set()


class _BoundStream:
    """A stream of one model that gives its slot back when it ends, however it ends."""

    def __init__(self, inner: GenerationStream, slot: _Slot) -> None:
        self._inner = inner
        self._slot: _Slot | None = slot
        slot.acquire()

    @property
    def prompt_tokens(self) -> int:
        return self._inner.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self._inner.completion_tokens

    @property
    def finish_reason(self) -> str | None:
        return self._inner.finish_reason

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        try:
            return await self._inner.__anext__()
        except BaseException:  # StopAsyncIteration included: the stream is over
            self._release()
            raise

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._release()

    def _release(self) -> None:
        if self._slot is not None:
            self._slot.release()
            self._slot = None

    def __del__(self) -> None:  # a reader that drops the stream without closing it
        self._release()


class SwappableGenerator:
    """The Generator port over whichever model is current; `swap` replaces it without dropping a stream."""

    def __init__(self, generator: Generator) -> None:
        self._slot = _Slot(generator)
        self._retiring: dict[asyncio.Task[None], _Slot] = {}

    @property
    def current(self) -> Generator:
        return self._slot.generator

    @property
    def version(self) -> str:
        return self._slot.generator.version

    @property
    def context_length(self) -> int:
        return self._slot.generator.context_length

    @property
    def draining(self) -> int:
        """Replaced models not closed yet (their streams are still running)."""
        return len(self._retiring)

    def count_tokens(self, text: str) -> int:
        return self._slot.generator.count_tokens(text)

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> GenerationStream:
        slot = self._slot
        return _BoundStream(slot.generator.stream(messages, params), slot)

    def swap(self, generator: Generator) -> asyncio.Task[None]:
        """Make ``generator`` current; the old model closes in the background once its streams end.

        Returns the task that closes it (tests and shutdown await it)."""
        old = self._slot
        self._slot = _Slot(generator)
        task = asyncio.get_running_loop().create_task(self._retire(old))
        self._retiring[task] = old
        task.add_done_callback(lambda t: self._retiring.pop(t, None))
        return task

    async def _retire(self, slot: _Slot) -> None:
        if slot.streams:
            log.info("model_draining", version=slot.generator.version, streams=slot.streams)
        await slot.drained.wait()
        await slot.generator.close()
        log.info("model_closed", version=slot.generator.version)

    async def close(self) -> None:
        """Close the current model and every replaced one still draining (the backends end their streams)."""
        retiring = dict(self._retiring)
        for task in retiring:
            task.cancel()
        for task, slot in retiring.items():
            try:
                await task
            except asyncio.CancelledError:
                pass
            if task.cancelled():  # closes are idempotent: one cut short is done again
                await slot.generator.close()
        await self._slot.generator.close()
