"""Generator backend: onnxruntime-genai in this process (CUDA when onnxruntime-genai-cuda and a GPU are there).

One owner thread per backend does all model work (og.Engine must be driven from one thread). It
serves up to `max_active` requests at once: requests that arrive together run as one batch on an
og.Engine (4 rows on CPU; the model runs with the GIL released), later arrivals start another batch
rather than wait for the running one to end, and the owner thread steps the batches in turn, so a
long answer does not block a short one. Seeded sampling runs alone on an og.Generator, since the
CPU Engine cannot seed one request of a batch (see `onnx_lanes`). More requests wait in its queue.
Deltas reach asyncio through `loop.call_soon_threadsafe` into an `asyncio.Queue`. A consumer that
stops iterating (aclose, cancellation, garbage collection) sets a cancel flag: the owner thread
cancels that request (its batch mates run on) and frees its KV cache.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Sequence
from pathlib import Path

import onnxruntime_genai as og

from gyre_contracts import SamplingParams
from gyre_runtime.generation.base import ChatTurn
from gyre_runtime.generation.chat_template import format_prompt
from gyre_runtime.generation.onnx_lanes import Done, EngineBatch, Failed, Job, LoneGenerator, Row
from gyre_runtime.models.manifest import load_manifest

Lane = EngineBatch | LoneGenerator


class OnnxGenaiStream:
    """One generation's text deltas (see the Generator port); token counts are live while it runs."""

    def __init__(self, backend: OnnxGenaiBackend, prompt: str, params: SamplingParams) -> None:
        self._backend = backend
        self._prompt = prompt
        self._params = params
        self._job: Job | None = None
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
            self._job = Job(self._prompt, self._params, asyncio.get_running_loop())
            self._backend._submit(self._job)
        try:
            item = await self._job.queue.get()
        except BaseException:  # cancelled while waiting
            self._cancel()
            raise
        if isinstance(item, str):
            return item
        self._finished = True
        if isinstance(item, Done):
            self.finish_reason = item.finish_reason
            raise StopAsyncIteration
        assert isinstance(item, Failed)
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
        # On the og.Generator path (seeded sampling) a long prompt is appended in chunks,
        # interleaved with the other requests' steps: og holds the GIL through append_tokens
        # (1.8k tokens: ~3.7 s in one call on 2 cores), so one call would stall the event loop.
        self._prefill_chunk = max(1, prefill_chunk)
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
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
        """``messages`` in the chat template its manifest names, generated when first iterated."""
        if self._closed:
            raise RuntimeError("generator is closed")
        return OnnxGenaiStream(self, format_prompt(self.manifest.chat_template, messages), params)

    def _submit(self, job: Job) -> None:
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
        lanes: list[Lane] = []
        try:
            while self._serve(lanes):
                pass
        except BaseException as exc:  # a bug here must not leave consumers waiting forever
            for lane in lanes:
                lane.fail_all(exc)
            lanes.clear()
            raise
        finally:
            for lane in lanes:
                lane.end_all("cancelled")
            while True:  # anything still queued
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.emit(Done(0, 0, "cancelled"))

    def _serve(self, lanes: list[Lane]) -> bool:
        """Admit waiting requests, then one step of each batch and lone generator; False on close."""
        while sum(lane.rows for lane in lanes) < self._max_active:
            try:
                job = self._jobs.get(block=not lanes)
            except queue.Empty:
                break
            if job is None:
                return False
            self._admit(job, lanes)
        for lane in list(lanes):
            lane.step()
            if lane.finished:
                lanes.remove(lane)
        return True

    def _admit(self, job: Job, lanes: list[Lane]) -> None:
        """Tokenize and check ``job``, then put it in a batch that has not stepped yet (or a new one)."""
        if job.cancelled:
            return
        prompt_tokens = 0
        try:
            tokens = self._tokenizer.encode(job.prompt)
            prompt_tokens = job.prompt_tokens = len(tokens)
            p = job.params
            if prompt_tokens >= self.context_length:
                raise ValueError(f"prompt has {prompt_tokens} tokens; the model's context is {self.context_length}")
            if p.max_tokens <= 0:
                job.emit(Done(prompt_tokens, 0, "length"))
                return
            max_length = min(prompt_tokens + p.max_tokens, self.context_length)
            row = Row(job, self._tokenizer.create_stream(), prompt_tokens)
            if p.temperature > 0 and p.seed is not None:
                options = _search_options(p, max_length=max_length)
                lanes.append(LoneGenerator(self._model, row, tokens, options, lambda: self._prefill_chunk, self._eos))
                return
            batch = next((lane for lane in lanes if isinstance(lane, EngineBatch) and lane.accepts()), None)
            if batch is None:
                batch = EngineBatch(self._model)
                lanes.append(batch)
            batch.add(row, tokens, p, max_length)
        except Exception as exc:  # handed to the consumer
            job.emit(Failed(exc, prompt_tokens))


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
