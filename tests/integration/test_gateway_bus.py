"""The gateway against a real nats-server, with fake embed and generate services written here.

The gateway runs in this process under uvicorn on a free port; the fakes answer retrieval and
embedding requests on core NATS and consume ``gyre.generate.requested`` from JetStream like the
real generate service (3 TokenDeltas, then GenerationCompleted on ``gyre.generate.stream.<id>``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from nats.aio.msg import Msg

from gyre_contracts import (
    Citation,
    DocumentDeletionRequested,
    DocumentSubmitted,
    EmbedRequest,
    EmbedResult,
    FeedbackSubmitted,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoad,
    GenerationRequested,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResult,
    Timings,
    TokenDelta,
    Usage,
    cloudevent_headers,
    decode_event,
    encode_body,
)
from gyre_gateway.app import create_app
from gyre_runtime.bus.connection import Bus, connect, ensure_topology
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from tests.support.nats_server import NatsServer
from tests.support.services import fresh_nats, serve_app, until_ready

KEY_A, KEY_B = "int-key-tenant-a", "int-key-tenant-b"
WAIT_S = 20.0  # upper bound of any single wait; each normally takes milliseconds
REQUEST_TIMEOUT_S = 3.0  # the gateway's wait for a reply; the silent-generator test waits this long
FAKE_MODEL = "fake-generator:1:0123abcd"
TOKENS = ("Paris", " is the", " capital [1].")


# ---------------------------------------------------------------- fakes of the embed and generate services


@dataclass
class Fakes:
    retrieve_requests: list[RetrieveRequest] = field(default_factory=list)
    generation_requests: list[GenerationRequested] = field(default_factory=list)
    load: GenerationLoad = field(default_factory=lambda: GenerationLoad(in_flight=0, capacity=1))


async def reply(bus: Bus, msg: Msg, event: Any) -> None:
    await bus.nc.publish(msg.reply, encode_body(event), headers=cloudevent_headers(event, source="gyre/fake-embed"))


def retrieval_responder(bus: Bus, fakes: Fakes) -> Any:
    async def on_request(msg: Msg) -> None:
        request = decode_event(msg.data, RetrieveRequest, dict(msg.headers or {}))
        fakes.retrieve_requests.append(request)
        if request.query == "boom":
            await reply(bus, msg, RetrieveResult(tenant=request.tenant, error="index unavailable"))
            return
        hit = RetrievedChunk(
            document_id=f"{request.tenant}-doc",
            chunk_id="chunk-1",
            version=1,
            index=0,
            score=0.75,
            text=f"about {request.query}",
            title="A title",
            metadata={"lang": "en"},
        )
        await reply(bus, msg, RetrieveResult(tenant=request.tenant, hits=(hit,), retrieval_ms=1.5))

    return on_request


@contextlib.asynccontextmanager
async def embeddings_responder(bus: Bus) -> AsyncIterator[None]:
    """An embed service answering ``gyre.embeddings`` with 4-d vectors, for as long as the block runs."""

    async def on_request(msg: Msg) -> None:
        request = decode_event(msg.data, EmbedRequest, dict(msg.headers or {}))
        vectors = tuple((float(len(t)), 1.0, 0.0, -1.0) for t in request.texts)
        counts = tuple(len(t.split()) for t in request.texts)
        await reply(
            bus,
            msg,
            EmbedResult(tenant=request.tenant, vectors=vectors, token_counts=counts, embedding_model="fake-minilm:1"),
        )

    sub = await bus.nc.subscribe(bus.subject("embeddings"), queue="embed", cb=on_request)
    await bus.nc.flush()
    try:
        yield
    finally:
        await sub.unsubscribe()
        await bus.nc.flush()


def generate_handler(service: Service, fakes: Fakes) -> Any:
    """Answers like the generate service: deltas, then the record, then Completed on the stream subject."""

    async def handle(event: GenerationRequested, ctx: MessageContext) -> None:
        fakes.generation_requests.append(event)
        question = next(m.content for m in reversed(event.messages) if m.role == "user")
        subject = f"generate.stream.{event.request_id}"
        if "SILENT" in question:
            return
        if "STALL" in question:  # one token, then nothing
            await service.publisher.emit(
                TokenDelta(tenant=event.tenant, request_id=event.request_id, index=0, text="Par"), subject=subject
            )
            return
        if "FAIL" in question:
            failed = GenerationFailed(tenant=event.tenant, request_id=event.request_id, error="the model fell over")
            await service.publisher.emit(failed, subject=subject)
            return
        for index, text in enumerate(TOKENS):
            await service.publisher.emit(
                TokenDelta(tenant=event.tenant, request_id=event.request_id, index=index, text=text), subject=subject
            )
        completed = GenerationCompleted(
            tenant=event.tenant,
            request_id=event.request_id,
            question=question,
            answer="".join(TOKENS),
            citations=(
                Citation(
                    number=1,
                    document_id=f"{event.tenant}-doc",
                    chunk_id="chunk-1",
                    title="A title",
                    score=0.75,
                    excerpt="Paris is the capital of France.",
                ),
            ),
            usage=Usage(prompt_tokens=12, completion_tokens=3, total_tokens=15),
            timings=Timings(retrieval_ms=1.0, time_to_first_token_ms=2.0, total_ms=3.0),
            model_version=FAKE_MODEL,
            prompt_version="fake-prompt:1",
        )
        await GenerationStore(await service.bus.kv("gyre_generations")).put(completed)
        await service.publisher.emit(completed, subject=subject)

    return handle


def load_responder(bus: Bus, fakes: Fakes) -> Any:
    """A generate replica's answer to ``gyre.generate.load``: whatever load the test sets."""

    async def on_request(msg: Msg) -> None:
        await reply(bus, msg, fakes.load)

    return on_request


# ---------------------------------------------------------------- the stack


@dataclass
class Stack:
    url: str
    settings: Settings
    bus: Bus  # the test's own connection
    fakes: Fakes
    nats: NatsServer

    def client(self, key: str | None = KEY_A) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=WAIT_S)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stack() -> AsyncIterator[Stack]:
    with fresh_nats(
        "gyre-gateway-", api_keys=f"{KEY_A}:tenant-a,{KEY_B}:tenant-b",
        request_timeout_s=REQUEST_TIMEOUT_S, first_token_timeout_s=REQUEST_TIMEOUT_S,
    ) as (nats_server, settings):
        bus = await connect(settings, name="gyre-test")
        await ensure_topology(bus)
        fakes = Fakes()
        retrieve_sub = await bus.nc.subscribe(
            bus.subject("retrieve"), queue="embed", cb=retrieval_responder(bus, fakes)
        )
        load_sub = await bus.nc.subscribe(
            bus.subject("generate.load"), queue="generate", cb=load_responder(bus, fakes)
        )
        generate = Service("generate", settings)
        generate.consume("generate", generate_handler(generate, fakes))
        await asyncio.wait_for(generate.start(), WAIT_S)
        try:
            async with serve_app(create_app(settings)) as url:
                yield Stack(url=url, settings=settings, bus=bus, fakes=fakes, nats=nats_server)
        finally:
            await generate.stop()
            await retrieve_sub.unsubscribe()
            await load_sub.unsubscribe()
            await bus.close()


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def last_event(bus: Bus, stream: str, subject: str, event_type: Any) -> tuple[Any, dict[str, str]]:
    msg = await bus.js.get_last_msg(bus.stream_name(stream), bus.subject(subject))
    headers = dict(msg.headers or {})
    return decode_event(msg.data or b"", event_type, headers), headers


# ---------------------------------------------------------------- auth, health, validation


async def test_requests_without_a_key_or_with_a_bad_key_get_401(stack: Stack) -> None:
    async with stack.client(None) as anonymous, stack.client("not-a-key") as wrong:
        assert_openai_error(await anonymous.post("/v1/search", json={"query": "x"}), 401)
        error = assert_openai_error(await wrong.get("/v1/models"), 401)
    assert error["type"] == "authentication_error"


async def test_the_gateway_is_healthy_and_ready_once_connected(stack: Stack) -> None:
    async with stack.client(None) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": "gateway"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "service": "gateway"}


async def test_a_validation_error_is_400_in_openai_format(stack: Stack) -> None:
    async with stack.client() as client:
        error = assert_openai_error(await client.post("/v1/search", json={"query": "q", "top_k": 0}), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == "top_k"
    assert error["message"].startswith("top_k:")


# ---------------------------------------------------------------- documents


async def test_a_submitted_document_is_registered_pending_then_published(stack: Stack) -> None:
    document_id = "sample/notes.md"  # ids may hold slashes (the CLI uses paths)
    async with stack.client() as client:
        response = await client.post(
            "/v1/documents",
            json={
                "id": document_id,
                "text": "# Notes\nParis is the capital.",
                "content_type": "text/markdown",
                "title": "Notes",
                "metadata": {"lang": "en"},
            },
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"document_id": document_id, "status": "pending"}
        status = (await client.get(f"/v1/documents/{document_id}")).json()

    record = await DocumentRegistry(await stack.bus.kv("gyre_documents")).get("tenant-a", document_id)
    assert record is not None and record.status == "pending" and record.title == "Notes"
    event, headers = await last_event(stack.bus, "GYRE_INGEST", "ingest.submitted.tenant-a", DocumentSubmitted)
    assert event.document_id == document_id and event.tenant == "tenant-a"
    assert event.text == "# Notes\nParis is the capital." and event.content_type == "text/markdown"
    assert event.metadata == {"lang": "en"} and event.submission_id and record.submission_id == ""
    assert headers["ce-id"] == event.submission_id and headers["ce-tenant"] == "tenant-a"
    assert status["document_id"] == document_id and status["status"] == "pending"
    assert status["version"] == 0 and status["chunks"] == 0 and status["reasons"] == []
    assert status["title"] == "Notes" and status["submitted_at"] and status["indexed_at"] is None


async def test_a_document_without_an_id_gets_a_new_one(stack: Stack) -> None:
    async with stack.client() as client:
        first = (await client.post("/v1/documents", json={"text": "one"})).json()["document_id"]
        second = (await client.post("/v1/documents", json={"text": "two"})).json()["document_id"]
    assert len(first) == 32 and first != second


async def test_another_tenant_can_neither_read_nor_delete_a_document(stack: Stack) -> None:
    async with stack.client(KEY_A) as client_a, stack.client(KEY_B) as client_b:
        await client_a.post("/v1/documents", json={"id": "private-doc", "text": "tenant A only"})
        error = assert_openai_error(await client_b.get("/v1/documents/private-doc"), 404)
        assert "private-doc" in error["message"]
        assert_openai_error(await client_b.delete("/v1/documents/private-doc"), 404)
        assert (await client_a.get("/v1/documents/private-doc")).json()["status"] == "pending"


async def test_deleting_a_document_marks_it_deleted_and_asks_the_index(stack: Stack) -> None:
    async with stack.client() as client:
        await client.post("/v1/documents", json={"id": "to-delete", "text": "bye"})
        response = await client.delete("/v1/documents/to-delete")
        assert response.status_code == 202 and response.json() == {"document_id": "to-delete", "status": "deleted"}
        assert (await client.get("/v1/documents/to-delete")).json()["status"] == "deleted"
        assert_openai_error(await client.delete("/v1/documents/never-existed"), 404)
    event, _ = await last_event(stack.bus, "GYRE_INDEX", "index.delete", DocumentDeletionRequested)
    assert event.document_id == "to-delete" and event.tenant == "tenant-a"


async def events_after(bus: Bus, stream: str, subject: str, after_seq: int, event_type: Any) -> list[Any]:
    """Every event on ``subject`` stored in ``stream`` after sequence ``after_seq``, in order."""
    name = bus.stream_name(stream)
    last = (await bus.js.stream_info(name)).state.last_seq
    found = []
    for seq in range(after_seq + 1, last + 1):
        msg = await bus.js.get_msg(name, seq)
        if msg.subject == bus.subject(subject):
            headers = dict(msg.headers or {})
            found.append((decode_event(msg.data or b"", event_type, headers), headers))
    return found


async def last_seq(bus: Bus, stream: str) -> int:
    return int((await bus.js.stream_info(bus.stream_name(stream))).state.last_seq)


async def test_a_document_of_any_media_type_is_passed_on_for_ingest_to_judge(stack: Stack) -> None:
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n"
    async with stack.client() as client:
        response = await client.post(
            "/v1/documents",
            json={"id": "scan.pdf", "content": base64.b64encode(pdf).decode(), "content_type": "Application/PDF"},
        )
    assert response.status_code == 202, response.text
    event, _ = await last_event(stack.bus, "GYRE_INGEST", "ingest.submitted.tenant-a", DocumentSubmitted)
    assert event.document_id == "scan.pdf" and event.content_type == "application/pdf"
    assert base64.b64decode(event.content) == pdf and event.text is None


async def test_uploaded_files_are_registered_and_published_one_event_each(stack: Stack) -> None:
    before = await last_seq(stack.bus, "GYRE_INGEST")
    html = "<html><body><h1>Caf\u00e9</h1></body></html>".encode("latin-1")
    files = [
        ("files", ("guide.md", b"# Guide\nRead me.", "application/octet-stream")),
        ("files", ("page.html", html, "text/html; charset=ISO-8859-1")),
        ("files", ("blob", b"\x00\x01\x02", "application/octet-stream")),
    ]
    form = {"metadata": json.dumps({"team": "docs"}), "id_prefix": "kb/"}
    async with stack.client() as client:
        response = await client.post("/v1/documents/upload", files=files, data=form)
        assert response.status_code == 202, response.text
        statuses = [(await client.get(f"/v1/documents/kb/{name}")).json()["status"] for name in ("guide.md", "blob")]
    assert response.json() == {
        "documents": [
            {"document_id": "kb/guide.md", "status": "pending"},
            {"document_id": "kb/page.html", "status": "pending"},
            {"document_id": "kb/blob", "status": "pending"},
        ]
    }
    assert statuses == ["pending", "pending"]
    published = await events_after(stack.bus, "GYRE_INGEST", "ingest.submitted.tenant-a", before, DocumentSubmitted)
    events = [e for e, _ in published]
    assert [e.document_id for e in events] == ["kb/guide.md", "kb/page.html", "kb/blob"]
    assert [e.content_type for e in events] == [
        "text/markdown", "text/html; charset=ISO-8859-1", "application/octet-stream",
    ]
    assert [base64.b64decode(e.content) for e in events] == [b"# Guide\nRead me.", html, b"\x00\x01\x02"]
    assert {e.tenant for e in events} == {"tenant-a"} and {e.source for e in events} == {"upload"}
    assert events[0].metadata == {"filename": "guide.md", "team": "docs"} and events[0].title == "guide"
    assert all(headers["ce-id"] == e.submission_id for e, headers in published)


async def test_one_uploaded_file_may_be_given_its_own_id(stack: Stack) -> None:
    async with stack.client(KEY_B) as client:
        response = await client.post(
            "/v1/documents/upload", files={"files": ("x.txt", b"hello", "text/plain")}, data={"id": "policy/2030"}
        )
    assert response.status_code == 202, response.text
    assert response.json() == {"documents": [{"document_id": "policy/2030", "status": "pending"}]}
    event, _ = await last_event(stack.bus, "GYRE_INGEST", "ingest.submitted.tenant-b", DocumentSubmitted)
    assert (event.document_id, event.tenant, event.content_type) == ("policy/2030", "tenant-b", "text/plain")


async def test_an_upload_with_one_bad_file_submits_none(stack: Stack) -> None:
    before = await last_seq(stack.bus, "GYRE_INGEST")
    files = [("files", ("ok.txt", b"fine", "text/plain")), ("files", ("empty.txt", b"", "text/plain"))]
    async with stack.client() as client:
        error = assert_openai_error(await client.post("/v1/documents/upload", files=files), 400)
        assert "'empty.txt' is empty" in error["message"]
        assert_openai_error(await client.get("/v1/documents/ok.txt"), 404)
    assert await last_seq(stack.bus, "GYRE_INGEST") == before


async def test_a_document_too_large_for_the_bus_is_413_and_not_registered(stack: Stack) -> None:
    """nats-server takes 1 MiB per message by default: the gateway says so instead of a 503 after the fact."""
    big = b"x" * (stack.bus.nc.max_payload + 1)
    async with stack.client() as client:
        response = await client.post("/v1/documents/upload", files={"files": ("big.txt", big, "text/plain")})
        error = assert_openai_error(response, 413)
        assert error["code"] == "document_too_large" and "max_payload" in error["message"]
        assert_openai_error(await client.get("/v1/documents/big.txt"), 404)


# ---------------------------------------------------------------- search and embeddings


async def test_search_asks_retrieval_for_the_callers_tenant(stack: Stack) -> None:
    async with stack.client(KEY_B) as client:
        response = await client.post("/v1/search", json={"query": "capital", "top_k": 7, "filter": {"lang": "en"}})
    assert response.status_code == 200, response.text
    asked = stack.fakes.retrieve_requests[-1]
    assert (asked.tenant, asked.query, asked.top_k, asked.filter) == ("tenant-b", "capital", 7, {"lang": "en"})
    assert asked.mode == "hybrid"
    assert response.json() == {
        "hits": [
            {
                "document_id": "tenant-b-doc",
                "chunk_id": "chunk-1",
                "score": 0.75,
                "text": "about capital",
                "title": "A title",
                "metadata": {"lang": "en"},
                "heading_path": [],
                "page": None,
            }
        ],
        "retrieval_ms": 1.5,
    }


async def test_a_retrieval_that_fails_is_502_with_its_reason(stack: Stack) -> None:
    async with stack.client() as client:
        error = assert_openai_error(await client.post("/v1/search", json={"query": "boom"}), 502)
    assert "index unavailable" in error["message"]


async def test_embeddings_without_an_embed_service_are_503(stack: Stack) -> None:
    async with stack.client() as client:
        error = assert_openai_error(await client.post("/v1/embeddings", json={"input": "x"}), 503)
    assert "embed service unavailable" in error["message"]


async def test_embeddings_come_back_in_openai_shape(stack: Stack) -> None:
    async with embeddings_responder(stack.bus), stack.client() as client:
        response = await client.post("/v1/embeddings", json={"input": ["one two", "three"], "model": "m"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "fake-minilm:1"
    assert body["data"][0] == {"object": "embedding", "index": 0, "embedding": [7.0, 1.0, 0.0, -1.0]}
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


# ---------------------------------------------------------------- chat completions


async def test_a_plain_chat_completion_returns_the_answer_and_citations(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2",
                "messages": [{"role": "user", "content": "What is the capital of France?"}],
                "temperature": 0.5,
                "max_tokens": 20,
                "retrieval_top_k": 3,
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == FAKE_MODEL
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Paris is the capital [1]."}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert body["citations"] == [
        {
            "number": 1,
            "document_id": "tenant-a-doc",
            "chunk_id": "chunk-1",
            "title": "A title",
            "score": 0.75,
            "excerpt": "Paris is the capital of France.",
        }
    ]
    asked = next(r for r in stack.fakes.generation_requests if r.request_id == body["id"])
    assert asked.tenant == "tenant-a" and asked.top_k == 3 and asked.model == "smollm2"
    assert asked.params.temperature == 0.5 and asked.params.max_tokens == 20 and asked.stream is False


async def test_a_streamed_chat_completion_yields_chunks_then_done(stack: Stack) -> None:
    payload = {"messages": [{"role": "user", "content": "Capital of France?"}], "stream": True}
    async with stack.client() as client, client.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert len(chunks) == len(TOKENS) + 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": TOKENS[0]}
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "".join(TOKENS)
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["object"] == "chat.completion.chunk"
    final = chunks[-1]
    assert final["choices"][0]["finish_reason"] == "stop" and final["usage"]["total_tokens"] == 15
    assert final["citations"][0]["document_id"] == "tenant-a-doc"


async def test_a_failed_generation_is_502(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "FAIL"}]})
    error = assert_openai_error(response, 502)
    assert error["code"] == "generation_failed" and "the model fell over" in error["message"]


async def test_a_silent_generator_is_504_after_the_first_token_timeout(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "SILENT"}]})
    error = assert_openai_error(response, 504)
    assert error["code"] == "timeout" and "GYRE_FIRST_TOKEN_TIMEOUT_S" in error["message"]


async def test_a_stream_without_a_first_token_is_a_plain_504_not_a_broken_stream(stack: Stack) -> None:
    payload = {"messages": [{"role": "user", "content": "SILENT"}], "stream": True}
    async with stack.client() as client:
        response = await client.post("/v1/chat/completions", json=payload)
    assert assert_openai_error(response, 504)["code"] == "timeout"


async def stream_subscriptions(stack: Stack) -> list[str]:
    """The ``generate.stream.*`` subscriptions the server knows of, from its monitoring endpoint."""
    async with httpx.AsyncClient(base_url=stack.nats.monitor_url) as monitor:
        connz = (await monitor.get("/connz", params={"subs": "1"})).json()
    subjects = [s for c in connz["connections"] for s in c.get("subscriptions_list") or []]
    return [s for s in subjects if ".generate.stream." in s]


async def wait_stream_subscriptions(stack: Stack, count: int, within_s: float) -> None:
    """Until the server's monitor shows ``count`` stream subscriptions. It reports subscriptions
    asynchronously (SUBs and UNSUBs alike, no event for either): a single snapshot can lag."""
    async with asyncio.timeout(within_s):
        while True:
            if len(await stream_subscriptions(stack)) == count:
                return
            await asyncio.sleep(0.05)


async def wait_no_stream_subscriptions(stack: Stack, within_s: float) -> None:
    await wait_stream_subscriptions(stack, 0, within_s)


@contextlib.asynccontextmanager
async def cancel_requests(stack: Stack) -> AsyncIterator[asyncio.Queue[GenerationCancelRequested]]:
    """Every GenerationCancelRequested on core ``gyre.generate.cancel.*`` while the block runs."""
    seen: asyncio.Queue[GenerationCancelRequested] = asyncio.Queue()

    async def on_cancel(msg: Msg) -> None:
        cancel = decode_event(msg.data, GenerationCancelRequested, dict(msg.headers or {}))
        assert msg.subject == f"gyre.generate.cancel.{cancel.request_id}"
        await seen.put(cancel)

    sub = await stack.bus.nc.subscribe("gyre.generate.cancel.*", cb=on_cancel)
    await stack.bus.nc.flush()
    try:
        yield seen
    finally:
        await sub.unsubscribe()


async def test_no_stream_subscription_outlives_its_request(stack: Stack) -> None:
    """After plain, streamed, failed and timed-out completions the gateway holds no stream subscription."""
    asked = (("Capital?", False, 200), ("Capital?", True, 200), ("FAIL", False, 502), ("SILENT", False, 504))
    async with stack.client() as client:
        for question, stream, status in asked:
            payload = {"messages": [{"role": "user", "content": question}], "stream": stream}
            response = await client.post("/v1/chat/completions", json=payload)
            assert response.status_code == status, (question, stream, response.text)
    await wait_no_stream_subscriptions(stack, WAIT_S)


async def test_a_timed_out_generation_is_cancelled_on_the_bus(stack: Stack) -> None:
    async with cancel_requests(stack) as cancels, stack.client() as client:
        response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "SILENT"}]})
        assert response.status_code == 504
        cancel = await asyncio.wait_for(cancels.get(), WAIT_S)
    asked, _ = await last_event(stack.bus, "GYRE_GENERATE", "generate.requested", GenerationRequested)
    assert cancel.request_id == asked.request_id and cancel.tenant == "tenant-a" and "timeout" in cancel.reason


async def test_a_client_leaving_mid_stream_cancels_its_generation_at_once(stack: Stack) -> None:
    payload = {"messages": [{"role": "user", "content": "STALL"}], "stream": True}
    async with cancel_requests(stack) as cancels:
        async with stack.client() as client, client.stream("POST", "/v1/chat/completions", json=payload) as response:
            assert response.status_code == 200
            first = await anext(response.aiter_lines())
            assert first.startswith("data: ") and json.loads(first.removeprefix("data: "))["id"].startswith("chatcmpl-")
            await wait_stream_subscriptions(stack, 1, WAIT_S)
            request_id = json.loads(first.removeprefix("data: "))["id"]
        # Well before the gateway's own timeout would end it.
        cancel = await asyncio.wait_for(cancels.get(), REQUEST_TIMEOUT_S / 2)
    assert cancel.request_id == request_id and cancel.reason == "client disconnected"
    await wait_no_stream_subscriptions(stack, REQUEST_TIMEOUT_S / 2)


async def test_a_client_leaving_a_plain_completion_cancels_its_generation(stack: Stack) -> None:
    payload = {"messages": [{"role": "user", "content": "SILENT"}]}
    async with cancel_requests(stack) as cancels:
        async with httpx.AsyncClient(
            base_url=stack.url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=REQUEST_TIMEOUT_S / 6
        ) as impatient:
            with pytest.raises(httpx.ReadTimeout):
                await impatient.post("/v1/chat/completions", json=payload)
        cancel = await asyncio.wait_for(cancels.get(), REQUEST_TIMEOUT_S / 2)
    published, _ = await last_event(stack.bus, "GYRE_GENERATE", "generate.requested", GenerationRequested)
    assert cancel.reason == "client disconnected" and cancel.request_id == published.request_id


async def test_prompt_label_and_retrieval_pass_through_from_body_or_header(stack: Stack) -> None:
    question = [{"role": "user", "content": "Labelled?"}]
    async with stack.client() as client:
        by_header = await client.post(
            "/v1/chat/completions", json={"messages": question}, headers={"X-Gyre-Prompt-Label": "candidate"}
        )
        by_body = await client.post(
            "/v1/chat/completions", json={"messages": question, "prompt_label": "v7", "retrieval": False}
        )
    asked = {r.request_id: r for r in stack.fakes.generation_requests}
    assert asked[by_header.json()["id"]].prompt_label == "candidate"
    assert asked[by_body.json()["id"]].prompt_label == "v7" and asked[by_body.json()["id"]].retrieval is False


async def test_a_busy_generate_service_is_429_with_retry_after_and_nothing_is_queued(stack: Stack) -> None:
    before = await last_seq(stack.bus, "GYRE_GENERATE")
    allowance = stack.settings.generation_queue_allowance
    stack.fakes.load = GenerationLoad(in_flight=1 + allowance, capacity=1)
    try:
        async with stack.client() as client:
            for stream in (False, True):
                response = await client.post(
                    "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}], "stream": stream}
                )
                error = assert_openai_error(response, 429)
                assert error["code"] == "generation_queue_full" and response.headers["retry-after"] == "2"
            stack.fakes.load = GenerationLoad(in_flight=allowance, capacity=1)  # one place left in the queue
            ok = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
            assert ok.status_code == 200, ok.text
    finally:
        stack.fakes.load = GenerationLoad(in_flight=0, capacity=1)
    assert await last_seq(stack.bus, "GYRE_GENERATE") == before + 1  # only the accepted request


async def test_without_a_generate_replica_chat_is_503_at_once(stack: Stack) -> None:
    other = load_settings(
        {}, nats_url=stack.nats.url, data_dir=stack.settings.data_dir, api_keys=f"{KEY_A}:tenant-a",
        subject_prefix="lonely",
    )
    app = create_app(other)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        await until_ready(app.state.service)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://gateway", headers={"Authorization": f"Bearer {KEY_A}"}
        ) as client:
            started = asyncio.get_running_loop().time()
            response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    error = assert_openai_error(response, 503)
    assert "generate service unavailable" in error["message"] and response.headers["retry-after"] == "1"
    assert asyncio.get_running_loop().time() - started < WAIT_S / 4


# ---------------------------------------------------------------- the official openai package


async def test_the_openai_package_works_against_the_gateway(stack: Stack) -> None:
    registry = ModelRegistry(await stack.bus.kv("gyre_models"))
    await registry.register(
        ModelEntry(id="smollm2-135m-instruct", kind="generation", version=FAKE_MODEL, served_by="generate")
    )

    def use_openai() -> tuple[Any, list[Any], Any, Any]:
        client = openai.OpenAI(base_url=f"{stack.url}/v1", api_key=KEY_A, max_retries=0)
        messages: Any = [{"role": "user", "content": "What is the capital of France?"}]
        plain = client.chat.completions.create(model="smollm2-135m-instruct", messages=messages)
        streamed = list(client.chat.completions.create(model="smollm2-135m-instruct", messages=messages, stream=True))
        embeddings = client.embeddings.create(model="fake-minilm", input=["lighthouse", "solar power"])
        models = client.models.list()
        return plain, streamed, embeddings, models

    async with embeddings_responder(stack.bus):
        plain, streamed, embeddings, models = await asyncio.to_thread(use_openai)
    assert plain.choices[0].message.content == "Paris is the capital [1]."
    assert plain.usage.total_tokens == 15 and plain.model_extra["citations"][0]["number"] == 1
    pieces = [c.choices[0].delta.content or "" for c in streamed if c.choices]
    assert len(pieces) >= 3 and "".join(pieces) == "Paris is the capital [1]."
    assert streamed[-1].choices[0].finish_reason == "stop"
    assert [len(d.embedding) for d in embeddings.data] == [4, 4]
    assert embeddings.data[1].embedding == pytest.approx([11.0, 1.0, 0.0, -1.0])
    card = next(m for m in models.data if m.id == "smollm2-135m-instruct")
    assert card.owned_by == "gyre" and card.model_extra == {"kind": "generation", "version": FAKE_MODEL}


# ---------------------------------------------------------------- feedback


async def chat_answer_id(client: httpx.AsyncClient) -> str:
    response = await client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi?"}]})
    assert response.status_code == 200, response.text
    request_id: str = response.json()["id"]
    return request_id


async def test_feedback_on_an_answer_is_accepted_and_published(stack: Stack) -> None:
    async with stack.client() as client:
        request_id = await chat_answer_id(client)
        response = await client.post(
            "/v1/feedback", json={"request_id": request_id, "rating": 5, "comment": "good", "correction": "Paris."}
        )
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["request_id"] == request_id and receipt["status"] == "accepted"
    event, headers = await last_event(stack.bus, "GYRE_FEEDBACK", "feedback.submitted", FeedbackSubmitted)
    assert (event.feedback_id, event.request_id, event.rating) == (receipt["feedback_id"], request_id, 5)
    assert (event.tenant, event.comment, event.correction) == ("tenant-a", "good", "Paris.")
    assert headers["ce-id"] == receipt["feedback_id"]


async def test_feedback_for_an_unknown_request_is_404(stack: Stack) -> None:
    async with stack.client() as client:
        response = await client.post("/v1/feedback", json={"request_id": "chatcmpl-nope", "rating": 1})
    error = assert_openai_error(response, 404)
    assert "unknown request_id" in error["message"] and error["param"] == "request_id"


async def test_feedback_on_another_tenants_answer_is_404(stack: Stack) -> None:
    async with stack.client(KEY_A) as client_a, stack.client(KEY_B) as client_b:
        request_id = await chat_answer_id(client_a)
        response = await client_b.post("/v1/feedback", json={"request_id": request_id, "rating": -1})
    assert_openai_error(response, 404)


# ---------------------------------------------------------------- metrics


async def test_metrics_count_requests_by_route_template(stack: Stack) -> None:
    async with stack.client() as client:
        await client.get("/v1/documents/metrics-probe")
        text = (await client.get("/metrics")).text
    assert 'gyre_gateway_requests_total{method="GET",route="/v1/documents/{document_id:path}",status="404"}' in text
    assert "gyre_gateway_request_seconds_bucket" in text
