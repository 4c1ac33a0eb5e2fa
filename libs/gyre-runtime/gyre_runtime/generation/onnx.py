"""Generator backend: onnxruntime-genai in this process (CUDA when onnxruntime-genai-cuda and a GPU are there).

One owner thread per backend does all stepping (`generate_next_token` holds the GIL, so more
threads would add no throughput). It serves up to `max_active` requests at once, round-robin one
token each, so a long answer does not block a short one; more requests wait in its queue. Deltas
reach asyncio through `loop.call_soon_threadsafe` into an `asyncio.Queue`. A consumer that stops
iterating (aclose, cancellation, garbage collection) sets a cancel flag: the owner thread stops
stepping that request and drops its og.Generator (and KV cache).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
import onnxruntime_genai as og

from gyre_contracts import SamplingParams
from gyre_runtime.generation.base import ChatTurn
from gyre_runtime.generation.chat_template import format_chatml
from gyre_runtime.generation.stops import StopSequences
from gyre_runtime.models.manifest import load_manifest


class _Done(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class _Failed(msgspec.Struct, frozen=True):
    error: BaseException
    prompt_tokens: int


class _Job:
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


class _Active:
    """A running request, touched only by the owner thread."""

    __slots__ = ("completion_tokens", "decoder", "generator", "job", "pending", "prompt_tokens", "stops")

    def __init__(self, job: _Job, generator: og.Generator, decoder: og.TokenizerStream, prompt: Any) -> None:
        self.job = job
        self.generator = generator
        self.decoder = decoder
        self.prompt_tokens = len(prompt)
        self.pending = prompt  # prompt tokens not yet appended (prefilled in chunks)
        self.completion_tokens = 0
        self.stops = StopSequences(job.params.stop)


class OnnxGenaiStream:
    """One generation's text deltas (see the Generator port); token counts are live while it runs."""

    def __init__(self, backend: OnnxGenaiBackend, prompt: str, params: SamplingParams) -> None:
        self._backend = backend
        self._prompt = prompt
        self._params = params
        self._job: _Job | None = None
        self._finished = False
        self.finish_reason: str | None = None

    @property
    def prompt_tokens(self) -> int:
        return self._job.prompt_tokens if self._job else 0

    @property
    def completion_tokens(self) -> int:
        """Tokens generated so far (final once the stream has ended, also when cancelled)."""
        return self._job.completion_tokens if self._job else 0

    def __aiter__(self) -> OnnxGenaiStream:
        return self

    async def __anext__(self) -> str:
        if self._finished:
            raise StopAsyncIteration
        if self._job is None:
            self._job = _Job(self._prompt, self._params, asyncio.get_running_loop())
            self._backend._submit(self._job)
        try:
            item = await self._job.queue.get()
        except BaseException:  # cancelled while waiting
            self._cancel()
            raise
        if isinstance(item, str):
            return item
        self._finished = True
        if isinstance(item, _Done):
            self.finish_reason = item.finish_reason
            raise StopAsyncIteration
        assert isinstance(item, _Failed)
        self.finish_reason = "error"
        raise item.error

    def _cancel(self) -> None:
        if not self._finished:
            self._finished = True
            self.finish_reason = "cancelled"
            if self._job is not None:
                self._job.cancelled = True

    async def aclose(self) -> None:
        self._cancel()

    def __del__(self) -> None:
        job = self._job
        if job is not None and not self._finished:
            job.cancelled = True


class OnnxGenaiBackend:
    """A built model folder (manifest, genai_config.json, weights, tokenizer) served from this process."""

    def __init__(
        self, model_dir: str | Path, *, threads: int = 0, max_active: int = 4, prefill_chunk: int = 128
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        config = og.Config(str(self.model_dir))
        if threads > 0:
            options = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
            config.overlay(json.dumps({"model": {"decoder": {"session_options": options}}}))
        self._model = og.Model(config)
        self._tokenizer = og.Tokenizer(self._model)
        self._eos = frozenset(int(t) for t in self._tokenizer.eos_token_ids)
        ctx = self.manifest.context_length
        if not ctx:
            genai = json.loads((self.model_dir / "genai_config.json").read_text())
            ctx = int(genai["model"]["context_length"])
        self.context_length = int(ctx)
        self._max_active = max(1, max_active)
        # A long prompt is appended in chunks, interleaved with the other requests' tokens: og
        # holds the GIL through append_tokens (1.8k tokens: ~3.7 s in one call on 2 cores), so
        # one call would stall the event loop and every other stream for that long.
        self._prefill_chunk = max(1, prefill_chunk)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"og-{self.manifest.name}", daemon=True)
        self._thread.start()

    @property
    def version(self) -> str:
        """`name:version:digest12` (the digest covers graph, weights and tokenizer)."""
        return self.manifest.model_version

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text)) if text else 0

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> OnnxGenaiStream:
        """The ChatML prompt of ``messages`` (what SmolLM2 was tuned on), generated when first iterated."""
        if self._closed:
            raise RuntimeError("generator is closed")
        return OnnxGenaiStream(self, format_chatml(messages), params)

    def _submit(self, job: _Job) -> None:
        if self._closed:
            raise RuntimeError("generator is closed")
        if not self._thread.is_alive():
            raise RuntimeError("the generator's worker thread has stopped")
        self._jobs.put(job)

    async def close(self) -> None:
        """Stop the worker thread; running and queued streams end with finish_reason "cancelled"."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            # The thread finishes the token it is stepping: waited for off the event loop.
            await asyncio.to_thread(self._thread.join, 30)

    # -- owner thread ------------------------------------------------------------------------

    def _run(self) -> None:
        active: list[_Active] = []
        try:
            while self._serve(active):
                pass
        except BaseException as exc:  # a bug here must not leave consumers waiting forever
            for a in active:
                a.job.emit(_Failed(exc, a.prompt_tokens))
            active.clear()
            raise
        finally:
            for a in active:
                a.job.emit(_Done(a.prompt_tokens, a.completion_tokens, "cancelled"))
            while True:  # anything still queued
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.emit(_Done(0, 0, "cancelled"))

    def _serve(self, active: list[_Active]) -> bool:
        """Admit waiting requests, then one token for each active one; False on close."""
        while len(active) < self._max_active:
            try:
                job = self._jobs.get(block=not active)
            except queue.Empty:
                break
            if job is None:
                return False
            started = self._start(job)
            if started is not None:
                active.append(started)
        for a in list(active):
            if not self._step(a):
                active.remove(a)
                a.generator = None  # frees the KV cache now
        return True

    def _start(self, job: _Job) -> _Active | None:
        if job.cancelled:
            return None
        prompt_tokens = 0
        try:
            tokens = self._tokenizer.encode(job.prompt)
            prompt_tokens = job.prompt_tokens = len(tokens)
            p = job.params
            if prompt_tokens >= self.context_length:
                raise ValueError(f"prompt has {prompt_tokens} tokens; the model's context is {self.context_length}")
            if p.max_tokens <= 0:
                job.emit(_Done(prompt_tokens, 0, "length"))
                return None
            max_length = min(prompt_tokens + p.max_tokens, self.context_length)
            gp = og.GeneratorParams(self._model)
            gp.set_search_options(**_search_options(p, max_length=max_length))
            generator = og.Generator(self._model, gp)
            return _Active(job, generator, self._tokenizer.create_stream(), tokens)
        except Exception as exc:  # handed to the consumer
            job.emit(_Failed(exc, prompt_tokens))
            return None

    def _step(self, a: _Active) -> bool:
        """One token (or one prefill chunk) for one request; False when the request is over."""
        job = a.job
        if job.cancelled:
            return False
        try:
            if len(a.pending):
                a.generator.append_tokens(a.pending[: self._prefill_chunk])
                a.pending = a.pending[self._prefill_chunk :]
                return True
            if a.generator.is_done():
                return self._finish(a, "length")
            a.generator.generate_next_token()
            token = int(a.generator.get_next_tokens()[0])
            a.completion_tokens += 1
            job.completion_tokens = a.completion_tokens
            if token in self._eos:
                return self._finish(a, "stop")
            released = a.stops.feed(a.decoder.decode(token))
            if released and not job.emit(released):
                return False
            if a.stops.stopped:
                return self._finish(a, "stop")
            if a.completion_tokens >= job.params.max_tokens or a.generator.is_done():
                return self._finish(a, "length")
            return True
        except Exception as exc:  # handed to the consumer
            job.emit(_Failed(exc, a.prompt_tokens))
            return False

    def _finish(self, a: _Active, reason: str) -> bool:
        rest = a.stops.rest()
        if rest:
            a.job.emit(rest)
        a.job.emit(_Done(a.prompt_tokens, a.completion_tokens, reason))
        return False


def _search_options(params: SamplingParams, *, max_length: int) -> dict[str, object]:
    """onnxruntime-genai's search options for a request: greedy at temperature 0, else sampling."""
    options: dict[str, object] = {"max_length": max_length}
    if params.temperature > 0:
        options.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
    else:
        options.update(do_sample=False)
    if params.seed is not None:
        options["random_seed"] = int(params.seed)
    return options
