"""Generator backend: a Triton Inference Server model (deploy/triton's gyre_llm) over gRPC streaming.

Each generation is one bidirectional `ModelStreamInfer` call on a shared channel: one request
(the ChatML prompt and the sampling parameters) goes up, one response per token comes back, the
last flagged final with its `finish_reason`. Stop sequences are applied here: the tail that could
still become a stop sequence is held back, and a hit cancels the call. Cancelling the call (aclose,
task cancellation, a stop hit) reaches the model as `is_cancelled()`, which ends its generation.
Token counts for prompt budgeting come from the model's `tokenizer.json`, read locally.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcclient_aio
from tokenizers import Tokenizer
from tritonclient.utils import InferenceServerException

from gyre_contracts import SamplingParams
from gyre_runtime.generation.base import ChatTurn, GenerationError
from gyre_runtime.generation.chat_template import format_chatml
from gyre_runtime.generation.stops import StopSequences

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

DEFAULT_CONTEXT_LENGTH = 2048  # when the local model folder says nothing


class TritonBackend:
    def __init__(
        self, url: str, model: str, model_dir: Path, *, model_version: str, context_length: int | None = None
    ) -> None:
        """`url` is Triton's gRPC address (`host:8001`); `model_dir` is a local copy of the model's
        folder (its tokenizer counts tokens); `model_version` is the version Triton serves."""
        self.url = _grpc_target(url)
        self.model = model
        self.model_version = model_version
        tokenizer_path = model_dir / "tokenizer.json"
        try:
            self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:
            raise GenerationError(f"cannot read the tokenizer {tokenizer_path}: {exc}") from exc
        self.context_length = context_length or _local_context_length(model_dir)
        self._client: Any = None  # made on first use, inside the event loop that will use it

    @classmethod
    def from_settings(cls, settings: Settings) -> TritonBackend:
        """Asks the server (blocking, bounded) which version of the model it serves."""
        if not settings.triton_url:
            raise GenerationError("GYRE_GENERATION_BACKEND=triton needs GYRE_TRITON_URL (Triton's gRPC host:port)")
        url = _grpc_target(settings.triton_url)
        version = served_version(url, settings.triton_model, timeout_s=min(settings.request_timeout_s, 30.0))
        return cls(url, settings.triton_model, settings.model_path / settings.generation_model, model_version=version)

    @property
    def version(self) -> str:
        return f"triton:{self.model}@{self.url}:{self.model_version}"

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids) if text else 0

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> TritonStream:
        return TritonStream(self, format_chatml(messages), params)

    def request_inputs(self, prompt: str, params: SamplingParams) -> list[Any]:
        """The model's inputs; `seed` only when there is one (the model's default is none)."""
        inputs = [
            _input("prompt", np.array([prompt.encode("utf-8")], dtype=np.object_), "BYTES"),
            _input("max_tokens", np.array([params.max_tokens], dtype=np.int32), "INT32"),
            _input("temperature", np.array([params.temperature], dtype=np.float32), "FP32"),
            _input("top_p", np.array([params.top_p], dtype=np.float32), "FP32"),
            _input("top_k", np.array([params.top_k], dtype=np.int32), "INT32"),
        ]
        if params.seed is not None:
            inputs.append(_input("seed", np.array([params.seed], dtype=np.int64), "INT64"))
        return inputs

    def open_call(self, prompt: str, params: SamplingParams) -> Any:
        """One streaming call carrying one request; the request side stays open until the call ends."""
        request = {"model_name": self.model, "inputs": self.request_inputs(prompt, params)}

        async def requests() -> AsyncIterator[dict[str, Any]]:
            yield request

        if self._client is None:
            self._client = grpcclient_aio.InferenceServerClient(self.url)
        return self._client.stream_infer(inputs_iterator=requests())

    def describe(self, what: str) -> str:
        return f"Triton {self.model}@{self.url}: {what}"

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()


class TritonStream:
    """Async iterator of text deltas from one Triton streaming call (see the module docstring)."""

    def __init__(self, backend: TritonBackend, prompt: str, params: SamplingParams) -> None:
        self._backend = backend
        self._prompt = prompt
        self._params = params
        self._call: Any = None
        self._finished = False
        self._stops = StopSequences(params.stop)
        # Token counts so far, as the server last counted them.
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.finish_reason: str | None = None

    def __aiter__(self) -> TritonStream:
        return self

    async def __anext__(self) -> str:
        while not self._finished:
            try:
                delta = await self._receive()
            except GenerationError:
                self._end("error", cancel=True)
                raise
            except BaseException:  # the consumer's task was cancelled while waiting
                self._end("cancelled", cancel=True)
                raise
            if delta:
                return delta
        raise StopAsyncIteration

    async def _receive(self) -> str:
        """Waits for the next response; returns what may be yielded now (possibly nothing)."""
        if self._call is None:
            try:
                self._call = self._backend.open_call(self._prompt, self._params)
            except InferenceServerException as exc:
                raise GenerationError(self._backend.describe(str(exc))) from exc
        try:
            result, error = await self._call.__anext__()
        except StopAsyncIteration:
            raise GenerationError(self._backend.describe("the stream ended before its final response")) from None
        except grpc.RpcError as exc:
            raise GenerationError(self._backend.describe(_rpc_error_text(exc))) from exc
        if error is not None:
            raise GenerationError(self._backend.describe(str(error)))
        self.prompt_tokens = int(result.as_numpy("prompt_tokens")[0])
        self.completion_tokens = int(result.as_numpy("completion_tokens")[0])
        released = self._stops.feed(_decode(result.as_numpy("text")[0]))
        final_reason = _decode(result.as_numpy("finish_reason")[0])
        # A stop sequence ends the stream (and cancels the call unless this was its last response).
        if self._stops.stopped:
            self._end("stop", cancel=not final_reason)
        elif final_reason:
            released += self._stops.rest()
            self._end(final_reason, cancel=False)
        return released

    def _end(self, reason: str, *, cancel: bool) -> None:
        if not self._finished:
            self._finished = True
            self.finish_reason = reason
            if cancel and self._call is not None:
                self._call.cancel()

    async def aclose(self) -> None:
        """Stops the generation: Triton cancels the request and the model stops stepping it."""
        self._end("cancelled", cancel=True)


def served_version(url: str, model: str, *, timeout_s: float = 10.0) -> str:
    """The newest version of `model` Triton serves, asked over the blocking gRPC client."""
    client = grpcclient.InferenceServerClient(_grpc_target(url))
    try:
        metadata = client.get_model_metadata(model, as_json=True, client_timeout=timeout_s)
    except InferenceServerException as exc:
        raise GenerationError(f"Triton {model}@{url}: cannot read the model's metadata: {exc}") from exc
    finally:
        client.close()
    versions = [str(v) for v in metadata.get("versions", [])]
    if not versions:
        raise GenerationError(f"Triton {model}@{url}: the server lists no version of the model")
    return max(versions, key=lambda v: (len(v), v))  # numeric order for numeric version folders


def _grpc_target(url: str) -> str:
    """`host:port` as tritonclient wants it; a `grpc://` or `http://` prefix is tolerated."""
    for scheme in ("grpc://", "http://", "https://"):
        if url.startswith(scheme):
            return url[len(scheme) :].rstrip("/")
    return url


def _local_context_length(model_dir: Path) -> int:
    for name, path in (("manifest.json", ("context_length",)), ("genai_config.json", ("model", "context_length"))):
        try:
            value: Any = json.loads((model_dir / name).read_text())
            for key in path:
                value = value[key]
            if value:
                return int(value)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return DEFAULT_CONTEXT_LENGTH


def _input(name: str, data: np.ndarray[Any, Any], datatype: str) -> Any:
    tensor = grpcclient.InferInput(name, list(data.shape), datatype)
    tensor.set_data_from_numpy(data)
    return tensor


def _decode(value: object) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def _rpc_error_text(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{getattr(code, 'name', 'RPC failed')}: {details}"
