"""The Generator behaviour suite on the OpenAI-compatible backend, against a real OpenAI-compatible
server: a Gyre gateway (its own local stack, retrieval off) serving SmolLM2 through onnxruntime-genai.

A few adapter-only facts a Gyre gateway cannot show (a server that reports no usage, names the
finish differently, or keeps streaming after the client left) are checked against a scripted
SSE server on a local socket.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from gyre_cli.stack import LocalStack
from gyre_contracts import SamplingParams
from gyre_runtime.config import load_settings
from gyre_runtime.generation import GenerationError, open_generator
from gyre_runtime.generation.openai_compat import OpenAICompatibleBackend, parse_extra_body
from tests.integration.generation.behaviour import (
    CAPITAL,
    MODEL,
    STORY,
    RemoteGeneratorBehaviour,
    collect,
)
from tests.support.nats_server import free_port
from tests.support.stack import running_stack

pytestmark = [pytest.mark.models, pytest.mark.stack]

KEY = "test-key-openai-backend"
EXTRA_BODY = {"retrieval": False}  # Gyre's own field: answer from the model alone, no retrieval


@pytest.fixture(scope="module")
def upstream() -> Iterator[LocalStack]:
    """A Gyre stack whose gateway is the OpenAI-compatible server under the backend."""
    with running_stack("gyre-openai-upstream-", {"GYRE_API_KEYS": f"{KEY}:tenant-openai"}) as stack:
        yield stack


def backend_for(base_url: str, **options: Any) -> OpenAICompatibleBackend:
    return OpenAICompatibleBackend(base_url, MODEL, **{"api_key": KEY, "extra_body": EXTRA_BODY, **options})


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def generator(upstream: LocalStack) -> AsyncIterator[OpenAICompatibleBackend]:
    backend = backend_for(f"{upstream.gateway_url}/v1")
    yield backend
    await backend.close()


@pytest.fixture
def unreachable_generator() -> OpenAICompatibleBackend:
    return backend_for(f"http://127.0.0.1:{free_port()}/v1", connect_timeout_s=5.0)


class TestOpenAICompatibleBackend(RemoteGeneratorBehaviour):
    # Not a guarantee of the OpenAI API (vLLM honours seeds, many servers do not): true here because
    # the server is a Gyre gateway over onnxruntime-genai, which does.
    deterministic_with_seed = True
    max_tokens_tolerance = 0  # the server reports the model's own count in the final chunk


# --- Against the real gateway: what it answers to bad requests ------------------------------


async def test_a_refused_key_is_a_generation_error_that_carries_the_servers_reason(upstream: LocalStack) -> None:
    backend = backend_for(f"{upstream.gateway_url}/v1", api_key="not-a-key")
    try:
        with pytest.raises(GenerationError, match="401") as raised:
            await collect(backend.stream(CAPITAL, SamplingParams(max_tokens=4)))
    finally:
        await backend.close()
    assert "key" in str(raised.value).lower()


async def test_an_invalid_parameter_is_a_generation_error_naming_the_problem(
    generator: OpenAICompatibleBackend,
) -> None:
    stream = generator.stream(CAPITAL, SamplingParams(max_tokens=4, temperature=7.0))
    with pytest.raises(GenerationError, match="400") as raised:
        await collect(stream)
    assert "temperature" in str(raised.value)
    assert stream.finish_reason == "error"


async def test_version_names_the_model_and_the_server(generator: OpenAICompatibleBackend, upstream: LocalStack) -> None:
    assert generator.version == f"openai:{MODEL}"
    assert generator.context_length == 8192
    assert generator.count_tokens("x" * 40) == 10


# --- Settings ----------------------------------------------------------------------------------


async def test_the_openai_settings_choose_and_configure_the_backend() -> None:
    settings = load_settings(
        {
            "GYRE_GENERATION_BACKEND": "openai",
            "GYRE_OPENAI_BASE_URL": "http://127.0.0.1:9/v1/",
            "GYRE_OPENAI_API_KEY": "k",
            "GYRE_OPENAI_MODEL": "served-model",
            "GYRE_OPENAI_EXTRA_BODY": '{"top_k": 40, "retrieval": false}',
            "GYRE_OPENAI_CONTEXT_LENGTH": "4096",
        }
    )
    backend = open_generator(settings)
    try:
        assert isinstance(backend, OpenAICompatibleBackend)
        assert backend.version == "openai:served-model"  # no address: the version reaches clients
        assert backend.extra_body == {"top_k": 40, "retrieval": False}
        assert backend.context_length == 4096
    finally:
        await backend.close()


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]"])
def test_extra_body_that_is_not_a_json_object_is_refused_with_an_example(raw: str) -> None:
    with pytest.raises(ValueError, match="GYRE_OPENAI_EXTRA_BODY"):
        parse_extra_body(raw)


# --- Against a scripted SSE server: what the gateway cannot show -------------------------------


class ScriptedServer:
    """Answers every POST with the given SSE ``data`` payloads, then closes (or, with ``endless``,
    keeps sending until the client leaves). Records request bodies and client disconnects."""

    def __init__(self, payloads: list[str], *, endless: bool = False) -> None:
        self.payloads = payloads
        self.endless = endless
        self.requests: list[dict[str, Any]] = []
        self.client_left = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        length = next(
            int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.lower().startswith("content-length:")
        )
        self.requests.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        watcher = asyncio.create_task(self._watch_for_leaving(reader))
        try:
            for payload in self.payloads:
                writer.write(f"data: {payload}\n\n".encode())
                await writer.drain()
            while self.endless and not self.client_left.is_set():
                writer.write(b'data: {"choices": [{"index": 0, "delta": {"content": " more"}}]}\n\n')
                await writer.drain()
                await asyncio.sleep(0.02)
        except ConnectionError:
            pass
        finally:
            writer.close()
            if not self.endless:
                watcher.cancel()

    async def _watch_for_leaving(self, reader: asyncio.StreamReader) -> None:
        if await reader.read(1) == b"":
            self.client_left.set()


def chunk(content: str | None = None, finish_reason: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    return json.dumps({"choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})


async def test_a_server_without_usage_gets_estimated_counts_and_its_finish_name_mapped() -> None:
    payloads = [chunk("Hello"), chunk(" there"), chunk(" friend"), chunk(None, "eos_token"), "[DONE]"]
    async with ScriptedServer(payloads) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m", extra_body={"top_k": 7})
        try:
            stream = backend.stream(CAPITAL, SamplingParams(max_tokens=5, seed=3, stop=("\n",)))
            assert await collect(stream) == ["Hello", " there", " friend"]
        finally:
            await backend.close()
    assert stream.finish_reason == "stop"
    assert stream.completion_tokens == 3  # one per content chunk
    assert stream.prompt_tokens == sum(backend.count_tokens(c) + 4 for _, c in CAPITAL)
    body = server.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["seed"], body["stop"], body["top_k"]) == (5, 3, ["\n"], 7)
    assert body["messages"][-1] == {"role": "user", "content": "What is the capital of France?"}


async def test_aclose_closes_the_connection_so_the_server_sees_the_client_leave() -> None:
    async with ScriptedServer([chunk("Once")], endless=True) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m")
        try:
            stream = backend.stream(STORY, SamplingParams(max_tokens=1000))
            assert await anext(stream) == "Once"
            assert await anext(stream) == " more"
            await stream.aclose()
            await asyncio.wait_for(server.client_left.wait(), 5.0)
        finally:
            await backend.close()
    assert stream.finish_reason == "cancelled"


async def test_a_stream_cut_off_before_its_end_is_a_generation_error() -> None:
    async with ScriptedServer([chunk("Half an")]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m")
        try:
            stream = backend.stream(CAPITAL, SamplingParams())
            with pytest.raises(GenerationError, match="ended without"):
                await collect(stream)
        finally:
            await backend.close()
    assert stream.finish_reason == "error"


async def test_an_error_reported_inside_the_stream_is_a_generation_error() -> None:
    error = json.dumps({"error": {"message": "generation failed: model crashed", "type": "server_error"}})
    async with ScriptedServer([chunk("Par"), error, "[DONE]"]) as server:
        backend = OpenAICompatibleBackend(server.base_url, "m")
        try:
            with pytest.raises(GenerationError, match="model crashed"):
                await collect(backend.stream(CAPITAL, SamplingParams()))
        finally:
            await backend.close()
