"""Token streaming with onnxruntime-genai (the built SmolLM2-135M-Instruct int4 by default).

One owner thread per generator instance does all stepping (`generate_next_token` holds the GIL,
so more threads would add no throughput). It serves up to `max_active` requests at once,
round-robin one token each, so a long answer does not block a short one; more requests wait in
its queue. Deltas reach asyncio through `loop.call_soon_threadsafe` into an `asyncio.Queue`.
A consumer that stops iterating (aclose, cancellation, garbage collection) sets a cancel flag:
the owner thread stops stepping that request and drops its og.Generator (and KV cache).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import onnxruntime_genai as og

from .manifest import load_manifest


class GenerationParams(msgspec.Struct, frozen=True, kw_only=True):
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    stop: tuple[str, ...] = ()


class _Done(msgspec.Struct, frozen=True):
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class _Failed(msgspec.Struct, frozen=True):
    error: BaseException
    prompt_tokens: int


class _Job:
    __slots__ = ("cancelled", "completion_tokens", "loop", "params", "prompt", "prompt_tokens", "queue")

    def __init__(self, prompt: str, params: GenerationParams, loop: asyncio.AbstractEventLoop) -> None:
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

    __slots__ = (
        "completion_tokens",
        "decoder",
        "emitted",
        "generator",
        "hold",
        "job",
        "pending",
        "prompt_tokens",
        "stops",
        "text",
    )

    def __init__(self, job: _Job, generator: og.Generator, decoder: og.TokenizerStream, prompt: Any) -> None:
        self.job = job
        self.generator = generator
        self.decoder = decoder
        self.prompt_tokens = len(prompt)
        self.pending = prompt  # prompt tokens not yet appended (prefilled in chunks)
        self.completion_tokens = 0
        self.text = ""
        self.emitted = 0
        self.stops = tuple(s for s in job.params.stop if s)
        self.hold = max((len(s) for s in self.stops), default=1) - 1


class GenerationStream:
    """Async iterator of text deltas; `prompt_tokens`, `completion_tokens` and `finish_reason`
    ("stop" | "length"; "cancelled" when the consumer stopped early) are set when it ends."""

    def __init__(self, owner: OnnxGenaiGenerator, prompt: str, params: GenerationParams) -> None:
        self._owner = owner
        self._prompt = prompt
        self._params = params
        self._job: _Job | None = None
        self._finished = False
        self.finish_reason: str | None = None

    @property
    def done(self) -> bool:
        return self._finished

    @property
    def prompt_tokens(self) -> int:
        return self._job.prompt_tokens if self._job else 0

    @property
    def completion_tokens(self) -> int:
        """Tokens generated so far (final once the stream has ended, also when cancelled)."""
        return self._job.completion_tokens if self._job else 0

    def __aiter__(self) -> AsyncIterator[str]:
        return self

    async def __anext__(self) -> str:
        if self._finished:
            raise StopAsyncIteration
        if self._job is None:
            self._job = _Job(self._prompt, self._params, asyncio.get_running_loop())
            self._owner._submit(self._job)
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

    async def __aenter__(self) -> GenerationStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cancel()

    def __del__(self) -> None:
        job = self._job
        if job is not None and not self._finished:
            job.cancelled = True

    async def text(self) -> str:
        """Consume the whole stream and return its text."""
        return "".join([delta async for delta in self])


class OnnxGenaiGenerator:
    def __init__(
        self, model_dir: str | Path, *, threads: int = 0, max_active: int = 4, prefill_chunk: int = 128
    ) -> None:
        self.model_dir = Path(model_dir)
        self.manifest = load_manifest(self.model_dir)
        config = og.Config(str(self.model_dir))
        if threads > 0:
            config.overlay(
                json.dumps(
                    {
                        "model": {
                            "decoder": {
                                "session_options": {
                                    "intra_op_num_threads": threads,
                                    "inter_op_num_threads": 1,
                                }
                            }
                        }
                    }
                )
            )
        self._model = og.Model(config)
        self._tokenizer = og.Tokenizer(self._model)
        self._eos = frozenset(int(t) for t in self._tokenizer.eos_token_ids)
        ctx = self.manifest.context_length
        if not ctx:
            genai = json.loads((self.model_dir / "genai_config.json").read_text())
            ctx = int(genai["model"]["context_length"])
        self._context_length = int(ctx)
        self._max_active = max(1, max_active)
        # A long prompt is appended in chunks, interleaved with the other requests' tokens: og
        # holds the GIL through append_tokens (1.8k tokens: ~3.7 s in one call on 2 cores), so
        # one call would stall the event loop and every other stream for that long.
        self._prefill_chunk = max(1, prefill_chunk)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"og-{self.manifest.name}", daemon=True)
        self._thread.start()

    # -- facts -------------------------------------------------------------------------------

    @property
    def version(self) -> str:
        """`name:version:digest12` (the digest covers graph, weights and tokenizer)."""
        return self.manifest.model_version

    @property
    def context_length(self) -> int:
        return self._context_length

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text)) if text else 0

    @staticmethod
    def format_chat(messages: list[tuple[str, str]]) -> str:
        """ChatML, as SmolLM2 was tuned on, ending with the assistant's turn opened.
        (og's apply_chat_template would inject a default system prompt.)"""
        parts = [f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in messages]
        parts.append("<|im_start|>assistant\n")
        return "".join(parts)

    # -- streaming ---------------------------------------------------------------------------

    def stream(self, prompt: str, params: GenerationParams | None = None) -> GenerationStream:
        """Starts when first iterated (inside a running event loop)."""
        if self._closed:
            raise RuntimeError("generator is closed")
        return GenerationStream(self, prompt, params or GenerationParams())

    def _submit(self, job: _Job) -> None:
        if self._closed:
            raise RuntimeError("generator is closed")
        if not self._thread.is_alive():
            raise RuntimeError("the generator's worker thread has stopped")
        self._jobs.put(job)

    def close(self) -> None:
        """Stop the worker thread; running and queued streams end with finish_reason "cancelled"."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            self._thread.join(timeout=30)

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
            if prompt_tokens == 0:
                raise ValueError("empty prompt")
            if prompt_tokens >= self._context_length:
                raise ValueError(f"prompt has {prompt_tokens} tokens; the model's context is {self._context_length}")
            if p.max_tokens <= 0:
                job.emit(_Done(prompt_tokens, 0, "length"))
                return None
            max_length = min(prompt_tokens + p.max_tokens, self._context_length)
            gp = og.GeneratorParams(self._model)
            options: dict[str, object] = {"max_length": max_length}
            if p.temperature > 0:
                options.update(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k)
            else:
                options.update(do_sample=False)
            if p.seed is not None:
                options["random_seed"] = int(p.seed)
            gp.set_search_options(**options)
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
            delta = a.decoder.decode(token)
            if delta:
                a.text += delta
                if a.stops:
                    hits = [i for i in (a.text.find(s, a.emitted) for s in a.stops) if i >= 0]
                    if hits:
                        cut = min(hits)
                        if cut > a.emitted:
                            job.emit(a.text[a.emitted : cut])
                        a.emitted = cut
                        return self._finish(a, "stop", flush=False)
                safe = len(a.text) - a.hold
                if safe > a.emitted:
                    if not job.emit(a.text[a.emitted : safe]):
                        return False
                    a.emitted = safe
            if a.completion_tokens >= job.params.max_tokens or a.generator.is_done():
                return self._finish(a, "length")
            return True
        except Exception as exc:  # handed to the consumer
            job.emit(_Failed(exc, a.prompt_tokens))
            return False

    def _finish(self, a: _Active, reason: str, *, flush: bool = True) -> bool:
        if flush and len(a.text) > a.emitted:
            a.job.emit(a.text[a.emitted :])
            a.emitted = len(a.text)
        a.job.emit(_Done(a.prompt_tokens, a.completion_tokens, reason))
        return False

    def __enter__(self) -> OnnxGenaiGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
