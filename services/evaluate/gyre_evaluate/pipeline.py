"""The live pipeline as a client sees it: retrieve (``gyre.retrieve``) and generate (GenerationRequested) over the bus.

An item is asked exactly as the gateway asks a chat completion: subscribe to
``generate.stream.<request_id>`` first, publish the GenerationRequested to JetStream, read TokenDeltas
until GenerationCompleted or GenerationFailed. The request is marked ``purpose="evaluation"`` so it
never counts as user traffic. Retrieval is asked separately (as ``POST /v1/search`` does), for the
retrieval metrics: generate's own retrieval is the same call with the same parameters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt
from nats.aio.msg import Msg

from gyre_contracts import (
    ChatMessage,
    Citation,
    EmbedRequest,
    EmbedResult,
    EnvelopeError,
    Event,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoad,
    GenerationLoadRequest,
    GenerationRequested,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResult,
    SamplingParams,
    TokenDelta,
    decode_event,
    new_id,
)
from gyre_runtime.bus import requests
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.publisher import Publisher

RetrievalMode = Literal["hybrid", "dense", "sparse"]
R = TypeVar("R", bound=Event)


class PipelineUnavailable(RuntimeError):
    """A part of the live pipeline is not there (no replica answers): the run cannot go on."""


@dataclass(frozen=True)
class LiveAnswer:
    """What the pipeline answered to one question (``error`` set: it failed, with GenerationFailed's code)."""

    text: str = ""
    finish_reason: str = ""
    citations: tuple[Citation, ...] = ()
    sources: tuple[Citation, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    total_ms: float = 0.0
    cpu_s: float | None = None
    model_version: str = ""
    prompt_version: str = ""
    grounding: str = ""
    error: str = ""
    error_code: str = ""


@dataclass
class LivePipeline:
    publisher: Publisher
    timeout_s: float = 120.0  # no word from generate for this long: the replicas are gone or stuck
    source: str = "gyre/evaluate"
    _load_checked_at: float = field(default=0.0, repr=False)

    @property
    def bus(self) -> Bus:
        return self.publisher.bus

    async def _request(self, event: Event, reply_type: type[R], wait_s: float) -> R:
        try:
            return await requests.request(self.bus, event, reply_type, source=self.source, timeout_s=wait_s)
        except requests.RequestFailed as exc:
            raise PipelineUnavailable(str(exc)) from exc

    async def retrieve(
        self, tenant: str, question: str, mode: RetrievalMode, top_k: int
    ) -> list[RetrievedChunk]:
        """The ranked hits, as ``POST /v1/search`` gets them."""
        request = RetrieveRequest(tenant=tenant, query=question, top_k=top_k, mode=mode, request_id=new_id())
        result = await self._request(request, RetrieveResult, 30.0)
        if result.error:
            raise PipelineUnavailable(f"retrieval failed: {result.error}")
        return list(result.hits)

    async def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Normalised embeddings of ``texts`` from the embed service (for embedding-similarity metrics)."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        result = await self._request(EmbedRequest(texts=tuple(texts)), EmbedResult, 60.0)
        if result.error:
            raise PipelineUnavailable(f"embeddings failed: {result.error}")
        vectors = np.asarray(result.vectors, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = vectors / np.maximum(norms, 1e-12)
        return normalised

    async def generate_load(self) -> GenerationLoad:
        """The generate replicas' load; PipelineUnavailable when none is running."""
        return await self._request(GenerationLoadRequest(), GenerationLoad, 5.0)

    async def answer(
        self,
        tenant: str,
        question: str,
        *,
        prompt_label: str,
        params: SamplingParams,
        mode: RetrievalMode,
        top_k: int,
        model: str = "",
    ) -> LiveAnswer:
        request_id = f"eval-{new_id()}"
        event = GenerationRequested(
            tenant=tenant, request_id=request_id, messages=(ChatMessage(role="user", content=question),),
            params=params, retrieval=top_k > 0, top_k=top_k, model=model, stream=True,
            prompt_label=prompt_label or "production", retrieval_mode=mode, purpose="evaluation",
        )
        queue: asyncio.Queue[TokenDelta | GenerationCompleted | GenerationFailed] = asyncio.Queue()

        async def on_message(msg: Msg) -> None:
            try:
                decoded = decode_event(
                    msg.data, TokenDelta | GenerationCompleted | GenerationFailed, dict(msg.headers or {})
                )
            except EnvelopeError:
                return
            queue.put_nowait(decoded)

        subscription = await self.bus.nc.subscribe(self.bus.subject(f"generate.stream.{request_id}"), cb=on_message)
        started = time.perf_counter()
        first: float | None = None
        try:
            await self.publisher.publish(event)
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=self.timeout_s)
                except TimeoutError:
                    await self.generate_load()  # raises PipelineUnavailable when no replica is left
                    raise PipelineUnavailable(
                        f"generate said nothing for {self.timeout_s:g}s about request {request_id}"
                    ) from None
                if isinstance(message, TokenDelta):
                    first = first or time.perf_counter()
                    continue
                total_ms = (time.perf_counter() - started) * 1000
                if isinstance(message, GenerationFailed):
                    return LiveAnswer(error=message.error, error_code=message.code, total_ms=total_ms)
                cpu = message.timings.cpu_ms
                return LiveAnswer(
                    text=message.answer, finish_reason=message.finish_reason, citations=message.citations,
                    sources=message.sources or message.citations,
                    prompt_tokens=message.usage.prompt_tokens, completion_tokens=message.usage.completion_tokens,
                    ttft_ms=((first or time.perf_counter()) - started) * 1000, total_ms=total_ms,
                    cpu_s=None if cpu is None else cpu / 1000, model_version=message.model_version,
                    prompt_version=message.prompt_version,
                    grounding=message.grounding.action if message.grounding else "",
                )
        finally:
            await subscription.unsubscribe()
