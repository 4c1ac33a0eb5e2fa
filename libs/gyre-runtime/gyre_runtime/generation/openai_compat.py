"""Generator backend: any OpenAI-compatible server (vLLM, TGI, NIM, Ollama, another Gyre gateway) over HTTP.

Each stream is one ``POST {base_url}/chat/completions`` with ``stream: true``, read as server-sent
events until ``data: [DONE]``. Standard sampling fields map one to one (temperature, top_p,
max_tokens, stop, seed); ``top_k`` is not part of OpenAI's API, so it is sent only when the
operator puts it in ``GYRE_OPENAI_EXTRA_BODY`` (a JSON object merged into every request; vLLM and
Gyre accept ``top_k``, Gyre also ``retrieval``). Usage comes from the server's final chunk
(``stream_options.include_usage``); a server that sends none gets an estimate (see ``estimate_tokens``).
``aclose`` closes the HTTP response, so the server sees the client go and can stop generating.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import httpx

from gyre_contracts import SamplingParams
from gyre_runtime.generation.base import ChatTurn, GenerationError

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

CHARS_PER_TOKEN = 4  # rough average for English with BPE tokenizers; used only where the server reports nothing
TOKENS_PER_MESSAGE = 4  # role markers and separators a chat template adds per turn
ERROR_BODY_CHARS = 500
# Servers name the same ends differently (TGI: eos_token, stop_sequence); Gyre speaks OpenAI's words.
FINISH_REASONS = {"eos": "stop", "eos_token": "stop", "stop_sequence": "stop", "max_tokens": "length"}


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` estimated as one per 4 characters (rounded up): no tokenizer is at hand here."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def parse_extra_body(raw: str) -> dict[str, Any]:
    """``GYRE_OPENAI_EXTRA_BODY``: empty, or a JSON object."""
    if not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"GYRE_OPENAI_EXTRA_BODY is not valid JSON ({exc}): expected an object such as '{{\"top_k\": 40}}'"
        ) from exc
    if not isinstance(value, dict):
        raise ValueError(f"GYRE_OPENAI_EXTRA_BODY must be a JSON object, not {type(value).__name__}")
    return value


def request_body(
    model: str, messages: Sequence[ChatTurn], params: SamplingParams, extra_body: Mapping[str, Any]
) -> dict[str, Any]:
    """The chat completion request: OpenAI's standard fields, then the operator's extra fields on top."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [{"role": role, "content": content} for role, content in messages],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    body.update(extra_body)
    return body


def error_message(response_text: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the body itself (shortened)."""
    try:
        data = json.loads(response_text)
    except json.JSONDecodeError:
        return response_text.strip()[:ERROR_BODY_CHARS] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail"))
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if isinstance(error, str):
            return error
    return response_text.strip()[:ERROR_BODY_CHARS]


class OpenAICompatibleStream:
    """One streamed chat completion: async iterator of text deltas (see the Generator port)."""

    def __init__(self, backend: OpenAICompatibleBackend, body: dict[str, Any], estimated_prompt_tokens: int) -> None:
        self._backend = backend
        self._body = body
        self._response: httpx.Response | None = None
        self._events: AsyncGenerator[str, None] | None = None
        self._finished = False
        self._done = False  # [DONE] seen
        self._chunks = 0
        self._usage: dict[str, Any] | None = None
        self._estimated_prompt_tokens = estimated_prompt_tokens
        self.finish_reason: str | None = None

    @property
    def prompt_tokens(self) -> int:
        if self._usage and isinstance(self._usage.get("prompt_tokens"), int):
            return int(self._usage["prompt_tokens"])
        return self._estimated_prompt_tokens

    @property
    def completion_tokens(self) -> int:
        """The server's count; without one, the content chunks received (servers stream about one token each)."""
        if self._usage and isinstance(self._usage.get("completion_tokens"), int):
            return int(self._usage["completion_tokens"])
        return self._chunks

    def __aiter__(self) -> OpenAICompatibleStream:
        return self

    async def __anext__(self) -> str:
        if self._finished:
            raise StopAsyncIteration
        try:
            if self._events is None:
                self._events = await self._open()
            async for data in self._events:
                delta = self._on_event(data)
                if delta:
                    return delta
                if self._done:
                    break
        except GenerationError:
            await self._end("error")
            raise
        except httpx.HTTPError as exc:
            if self.finish_reason == "cancelled":  # aclose() from another task closed the response under us
                raise StopAsyncIteration from None
            await self._end("error")
            raise GenerationError(f"{self._backend.base_url}: stream broke off: {_describe(exc)}") from exc
        except BaseException:  # cancelled while waiting: the consumer is gone
            await self._end("cancelled")
            raise
        if self.finish_reason is None:
            await self._end("error")
            raise GenerationError(f"{self._backend.base_url}: the stream ended without a finish_reason or [DONE]")
        await self._end(self.finish_reason)
        raise StopAsyncIteration

    async def _open(self) -> AsyncGenerator[str, None]:
        backend = self._backend
        request = backend.client.build_request("POST", "/chat/completions", json=self._body)
        try:
            response = await backend.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise GenerationError(
                f"cannot reach the OpenAI-compatible server at {backend.base_url}: {_describe(exc)}"
            ) from exc
        self._response = response
        if response.status_code >= 400:
            text = (await response.aread()).decode(errors="replace")
            raise GenerationError(
                f"{backend.base_url}/chat/completions answered {response.status_code}: {error_message(text)}"
            )
        return _sse_data(response)

    def _on_event(self, data: str) -> str:
        """Text of one ``data:`` payload; records finish_reason and usage; [DONE] ends the stream."""
        if data.strip() == "[DONE]":
            self._done = True
            return ""
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError as exc:
            raise GenerationError(f"{self._backend.base_url}: undecodable stream event {data[:200]!r}") from exc
        if not isinstance(chunk, dict):
            return ""
        error = chunk.get("error")
        if error:  # an error after the response started can only be reported in-band
            message = error.get("message", error) if isinstance(error, dict) else error
            raise GenerationError(f"{self._backend.base_url}: generation failed: {message}")
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        text = ""
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if content:
                text += content
            reason = choice.get("finish_reason")
            if reason:
                self.finish_reason = FINISH_REASONS.get(reason, reason)
        if text:
            self._chunks += 1
        return text

    async def _end(self, reason: str) -> None:
        """Record how the stream ended and close the HTTP response (a disconnect the server sees
        when it is still sending). Only the first end counts."""
        if not self._finished:
            self._finished = True
            self.finish_reason = reason
        events, self._events = self._events, None
        response, self._response = self._response, None
        if events is not None:
            try:
                await events.aclose()
            except RuntimeError:  # still running in another task: closing the response ends it
                pass
        if response is not None:
            await response.aclose()

    async def aclose(self) -> None:
        if not self._finished:
            await self._end("cancelled")


async def _sse_data(response: httpx.Response) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith("data:"):
            value = line[5:]
            lines.append(value[1:] if value.startswith(" ") else value)
        # Comments (":"), event:, id: and retry: lines carry nothing a chat completion needs.
    if lines:
        yield "\n".join(lines)


def _describe(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class OpenAICompatibleBackend:
    """Streams chat completions from an OpenAI-compatible server; one HTTP connection per stream."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "",
        extra_body: Mapping[str, Any] | None = None,
        context_length: int = 8192,
        timeout_s: float = 120.0,
        connect_timeout_s: float = 10.0,
    ) -> None:
        if not base_url:
            raise ValueError("the openai backend needs GYRE_OPENAI_BASE_URL (e.g. http://127.0.0.1:8000/v1)")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.extra_body = dict(extra_body or {})
        self.context_length = context_length
        headers = {"Accept": "text/event-stream"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # The read timeout bounds the silence between two events, not the whole answer.
        self.client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAICompatibleBackend:
        return cls(
            settings.openai_base_url,
            settings.openai_model or settings.generation_model,
            api_key=settings.openai_api_key,
            extra_body=parse_extra_body(settings.openai_extra_body),
            context_length=settings.openai_context_length,
            timeout_s=settings.request_timeout_s,
        )

    @property
    def version(self) -> str:
        # No host: the version reaches clients (a chat response's `model`), the backend's address must not.
        return f"openai:{self.model}"

    def count_tokens(self, text: str) -> int:
        """An estimate (characters / 4): the server's tokenizer is not available here."""
        return estimate_tokens(text)

    def stream(self, messages: Sequence[ChatTurn], params: SamplingParams) -> OpenAICompatibleStream:
        """Starts when first iterated; errors (unreachable, refused, 4xx/5xx) raise GenerationError there."""
        prompt_tokens = sum(estimate_tokens(content) + TOKENS_PER_MESSAGE for _, content in messages)
        return OpenAICompatibleStream(self, request_body(self.model, messages, params, self.extra_body), prompt_tokens)

    async def close(self) -> None:
        await self.client.aclose()
