"""The owner thread's units of work for `OnnxGenaiBackend`: batches on og.Engine, and lone og.Generators.

onnxruntime-genai 0.18's Engine runs the requests it holds as one batch per `run()` call, with the
GIL released while the model runs; per request it honours temperature, top_p, top_k, the number of
tokens to generate and a KV-cache cap (`max_session_tokens`, else the cache grows to the model's
8192-token context: ~1.5 GB for 4 requests). On CPU it is a static batcher: at most 4 requests
(`configured_max_batch_size`; the config's `static_batching.max_batch_size` does not raise it), and
a request added while a batch runs waits for the whole batch. So each `EngineBatch` takes requests
only until its first step; later arrivals start another batch (Engines are cheap: 0.2 ms, no
memory of their own) and the owner thread steps the batches in turn. Its prefill is one call: a
long prompt does not stall the event loop (GIL released) but pauses the other batches meanwhile.

What the static Engine cannot do per request: a per-request seed (and stop strings) need its
dynamic batching, which needs CUDA. Seeded sampling therefore runs alone on an og.Generator
(`LoneGenerator`, its prompt appended in chunks), interleaved with the batches; stop sequences are
matched on the text for both (`StopSequences`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import onnxruntime_genai as og

from gyre_contracts import SamplingParams
from gyre_runtime.generation.stops import StopSequences

EVENT_CAPACITY = 64
_TOKEN = int(og.EngineEventFlags.TOKEN)
_FINISHED = int(og.EngineEventFlags.TURN_FINISHED)
_FAILED = int(og.EngineEventFlags.FAILED)
_REASONS = {
    og.FinishReason.EOS: "stop",
    og.FinishReason.STOP_STRING: "stop",
    og.FinishReason.MAX_GENERATED_TOKENS: "length",
    og.FinishReason.MAX_SESSION_TOKENS: "length",
    og.FinishReason.CANCELLED: "cancelled",
}


class Done(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Failed(msgspec.Struct, frozen=True):
    error: BaseException
    prompt_tokens: int


class Job:
    """A request between a consumer's event loop and the owner thread."""

    __slots__ = ("cancelled", "completion_tokens", "loop", "params", "prompt", "prompt_tokens", "queue")

    def __init__(self, prompt: str, params: SamplingParams, loop: asyncio.AbstractEventLoop) -> None:
        self.prompt = prompt
        self.params = params
        self.loop = loop
        self.queue: asyncio.Queue[object] = asyncio.Queue()
        self.cancelled = False
        self.prompt_tokens = 0  # live counts, written by the owner thread
        self.completion_tokens = 0

    def emit(self, item: object) -> bool:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
            return True
        except RuntimeError:  # the consumer's event loop is closed
            self.cancelled = True
            return False


class Row:
    """One running request's text side: decoding, stop sequences, counts, its end (owner thread only)."""

    __slots__ = ("completion_tokens", "decoder", "ended", "job", "prompt_tokens", "stops")

    def __init__(self, job: Job, decoder: og.TokenizerStream, prompt_tokens: int) -> None:
        self.job = job
        self.decoder = decoder
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.stops = StopSequences(job.params.stop)
        self.ended = False

    def token(self, token: int) -> bool:
        """Count, decode and release ``token``; False when the row must stop (stop sequence, consumer gone)."""
        self.count()
        released = self.stops.feed(self.decoder.decode(token))
        if released and not self.job.emit(released):
            return False
        return not self.stops.stopped

    def count(self) -> None:
        self.completion_tokens += 1
        self.job.completion_tokens = self.completion_tokens

    def finish(self, reason: str) -> None:
        if self.ended:
            return
        self.ended = True
        if reason != "cancelled":
            rest = self.stops.rest()
            if rest:
                self.job.emit(rest)
        self.job.emit(Done(self.prompt_tokens, self.completion_tokens, reason))

    def fail(self, error: BaseException) -> None:
        if not self.ended:
            self.ended = True
            self.job.emit(Failed(error, self.prompt_tokens))

    def stopping_reason(self) -> str:
        return "stop" if self.stops.stopped else "cancelled"


class EngineBatch:
    """Up to ``capacity`` requests run as one batch on their own og.Engine, one token each per step."""

    def __init__(self, model: og.Model) -> None:
        self._engine = og.Engine(model)
        self._buffer = self._engine.create_event_buffer(EVENT_CAPACITY)
        self.capacity = max(1, int(self._engine.get_capabilities().configured_max_batch_size))
        # id(request) -> (request, turn id, row); the request is held until its TURN_FINISHED event
        # (dropping an og.Request abandons it) so ids stay unique.
        self._requests: dict[int, tuple[og.Request, int, Row]] = {}
        self.started = False

    def accepts(self) -> bool:
        """Room, and no step yet: the static batcher would hold a later request until this batch ends."""
        return not self.started and len(self._requests) < self.capacity

    @property
    def rows(self) -> int:
        return sum(not row.ended for _, _, row in self._requests.values())

    @property
    def finished(self) -> bool:
        return not self._requests

    def add(self, row: Row, tokens: Any, params: SamplingParams, max_length: int) -> None:
        options = og.RequestOptions()
        options.set_max_session_tokens(max_length)  # bounds this request's KV cache
        request = self._engine.create_request(options=options)
        turn = og.TurnOptions(request)
        turn.set_max_generated_tokens(params.max_tokens)
        if params.temperature > 0:
            turn.set_do_sample(True)
            turn.set_temperature(params.temperature)
            turn.set_top_p(params.top_p)
            turn.set_top_k(params.top_k)
        else:
            turn.set_do_sample(False)
        turn_id = request.begin_turn(np.asarray(tokens, dtype=np.int32), turn)
        self._requests[id(request)] = (request, turn_id, row)

    def step(self) -> None:
        """Cancel what its consumers dropped, then one model call (GIL released) and its events."""
        self.started = True
        for request, turn_id, row in self._requests.values():
            if row.job.cancelled and not row.ended:
                self._stop(request, turn_id, row, "cancelled")
        try:
            if not self._engine.has_pending_requests():
                self.end_all("cancelled")
                return
            self._engine.run(self._buffer)
            for k in range(len(self._buffer)):
                self._on_event(self._buffer[k])
        except Exception as exc:  # the engine is unusable: every request of it fails
            self.fail_all(exc)

    def _on_event(self, event: og.EngineEvent) -> None:
        entry = self._requests.get(id(event.request))
        if entry is None:
            return
        request, turn_id, row = entry
        flags = int(event.flags)
        if flags & _TOKEN and not row.ended and not row.token(int(event.token)):
            self._stop(request, turn_id, row, row.stopping_reason())
        if flags & _FAILED:
            row.fail(RuntimeError(f"onnxruntime-genai engine failed: {event.error_code}"))
        if flags & _FINISHED:
            reason = _REASONS.get(event.finish_reason)
            if reason == "stop" and event.finish_reason == og.FinishReason.EOS:
                row.count()  # the end-of-sequence token was generated too (as on the og.Generator path)
            if reason is None:
                row.fail(RuntimeError(f"onnxruntime-genai engine: the request ended with {event.finish_reason}"))
            else:
                row.finish(reason)
            del self._requests[id(request)]
            request.close()  # frees its KV cache now

    def _stop(self, request: og.Request, turn_id: int, row: Row, reason: str) -> None:
        """End ``row`` for its consumer now; the engine confirms with a CANCELLED event on a later step."""
        row.finish(reason)
        request.cancel_turn(turn_id)

    def end_all(self, reason: str) -> None:
        for request, _, row in self._requests.values():
            row.finish(reason)
            request.close()
        self._requests.clear()

    def fail_all(self, error: BaseException) -> None:
        for _, _, row in self._requests.values():
            row.fail(error)
        self.end_all("cancelled")


class LoneGenerator:
    """One request on its own og.Generator (seeded sampling): one token, or one prompt chunk, per step."""

    def __init__(
        self,
        model: og.Model,
        row: Row,
        tokens: Any,
        options: dict[str, object],
        chunk: Callable[[], int],
        eos: frozenset[int],
    ) -> None:
        params = og.GeneratorParams(model)
        params.set_search_options(**options)
        self._generator: og.Generator | None = og.Generator(model, params)
        self._row = row
        self._pending = tokens  # prompt tokens not yet appended (prefilled in chunks, GIL held per chunk)
        self._chunk = chunk
        self._eos = eos
        self.started = True

    def accepts(self) -> bool:
        return False

    @property
    def rows(self) -> int:
        return 0 if self.finished else 1

    @property
    def finished(self) -> bool:
        return self._generator is None

    def step(self) -> None:
        row, generator = self._row, self._generator
        if generator is None:
            return
        try:
            if row.job.cancelled:
                return self.end_all("cancelled")
            if len(self._pending):
                size = self._chunk()
                generator.append_tokens(self._pending[:size])
                self._pending = self._pending[size:]
                return None
            if generator.is_done():
                return self.end_all("length")
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in self._eos:
                row.count()
                return self.end_all("stop")
            if not row.token(token):
                return self.end_all(row.stopping_reason())
            if row.completion_tokens >= row.job.params.max_tokens or generator.is_done():
                return self.end_all("length")
            return None
        except Exception as exc:  # handed to the consumer
            return self.fail_all(exc)

    def end_all(self, reason: str) -> None:
        self._row.finish(reason)
        self._generator = None  # frees the KV cache now

    def fail_all(self, error: BaseException) -> None:
        self._row.fail(error)
        self._generator = None
