"""End to end through the gateway, on the real stack with the real default models."""

from __future__ import annotations

import base64
import json
import uuid

import httpx
import openai
import pytest
import pytest_asyncio

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import OPERATOR_KEY, Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e

DOCUMENT = """# The Zorbulon Protocol

The Zorbulon protocol was invented by Mira Castellane in 2031 to synchronise lighthouse clocks.
Every lighthouse that speaks Zorbulon flashes its beacon exactly seven times at midnight.
The protocol's reference implementation is written in Ada and runs on solar power.
"""


async def submit_and_wait(client: httpx.Client, events: EventWatcher, doc_id: str, text: str) -> None:
    response = client.post("/v1/documents", json={"id": doc_id, "text": text, "title": "Zorbulon",
                                                  "content_type": "text/markdown", "metadata": {"kind": "spec"}})
    assert response.status_code == 202, response.text
    assert response.json() == {"document_id": doc_id, "status": "pending"}
    await events.wait_for("gyre.index.updated", doc_id)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def zorbulon_id(client_a: httpx.Client, events: EventWatcher) -> str:
    """A document of tenant A, submitted and awaited until DocumentIndexed."""
    doc_id = f"zorbulon-{uuid.uuid4().hex[:8]}"
    await submit_and_wait(client_a, events, doc_id, DOCUMENT)
    return doc_id


def test_a_submitted_document_is_indexed_and_found_by_search(client_a: httpx.Client, zorbulon_id: str) -> None:
    status = client_a.get(f"/v1/documents/{zorbulon_id}").json()
    assert status["status"] == "indexed" and status["chunks"] >= 1 and status["version"] == 1
    hits = client_a.post("/v1/search", json={"query": "How many times do lighthouses flash?", "top_k": 3})
    assert hits.status_code == 200, hits.text
    best = hits.json()["hits"][0]
    assert best["document_id"] == zorbulon_id and "seven times" in best["text"]


async def test_a_chat_completion_answers_and_cites_the_document(client_a: httpx.Client, zorbulon_id: str) -> None:
    response = client_a.post("/v1/chat/completions", json={
        "model": "smollm2-135m-instruct", "max_tokens": 48,
        "messages": [{"role": "user", "content": "Who invented the Zorbulon protocol?"}],
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert "Castellane" in body["choices"][0]["message"]["content"], body
    assert body["usage"]["completion_tokens"] > 0
    assert zorbulon_id in [c["document_id"] for c in body["citations"]]


async def test_streaming_yields_several_chunks_then_done(client_a: httpx.Client, zorbulon_id: str) -> None:
    payload = {"messages": [{"role": "user", "content": "What does a Zorbulon lighthouse do at midnight?"}],
               "stream": True, "max_tokens": 32}
    lines = []
    with client_a.stream("POST", "/v1/chat/completions", json=payload) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert len(chunks) >= 3 and "seven" in text.lower(), text
    assert any(zorbulon_id in [x["document_id"] for x in c.get("citations") or []] for c in chunks)


async def test_feedback_is_recorded_and_counted_by_the_monitor(
    stack: LocalStack, client_a: httpx.Client, events: EventWatcher, zorbulon_id: str
) -> None:
    answer = client_a.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Who invented Zorbulon?"}], "max_tokens": 16,
    }).json()
    response = client_a.post("/v1/feedback", json={"request_id": answer["id"], "rating": 1, "comment": "useful"})
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.feedback.recorded", answer["id"])
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}  # the stack's GYRE_API_KEYS key: every service's operator
    stats = httpx.get(f"{stack.url_of('monitor')}/stats", headers=operator).json()
    assert stats["events"]["gyre.feedback.recorded.v1"] >= 1
    assert stats["events"]["gyre.index.updated.v1"] >= 1
    assert stats["latency"]["time_to_first_token"]["count"] >= 1
    metrics = httpx.get(f"{stack.url_of('monitor')}/metrics", headers=operator).text
    assert 'gyre_events_total{type="gyre.feedback.recorded.v1"}' in metrics


def test_feedback_for_an_unknown_request_is_refused(client_a: httpx.Client) -> None:
    response = client_a.post("/v1/feedback", json={"request_id": "chatcmpl-nope", "rating": 1})
    assert response.status_code == 404
    assert "unknown" in response.json()["error"]["message"]


def test_another_tenant_sees_none_of_the_documents(client_b: httpx.Client, zorbulon_id: str) -> None:
    assert client_b.get(f"/v1/documents/{zorbulon_id}").status_code == 404
    hits = client_b.post("/v1/search", json={"query": "Zorbulon lighthouse", "top_k": 5}).json()["hits"]
    assert all(h["document_id"] != zorbulon_id for h in hits)


def test_requests_without_a_valid_key_get_401(stack: LocalStack) -> None:
    assert httpx.post(f"{stack.gateway_url}/v1/search", json={"query": "x"}).status_code == 401
    bad = httpx.get(f"{stack.gateway_url}/v1/models", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and "error" in bad.json()


def test_blank_text_is_refused_by_the_gateway_naming_the_field(client_a: httpx.Client) -> None:
    response = client_a.post("/v1/documents", json={"id": "blank-doc", "text": "  \n\t "})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == "text"
    assert client_a.get("/v1/documents/blank-doc").status_code == 404


async def test_a_page_with_no_text_after_extraction_is_rejected_empty(
    client_a: httpx.Client, events: EventWatcher
) -> None:
    doc_id = f"empty-page-{uuid.uuid4().hex[:8]}"
    page = b'<html><head><script>var x = 1;</script></head><body><nav><a href="/">Home</a></nav></body></html>'
    response = client_a.post("/v1/documents", json={
        "id": doc_id, "content": base64.b64encode(page).decode(), "content_type": "text/html",
    })
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.ingest.rejected", doc_id)
    status = client_a.get(f"/v1/documents/{doc_id}").json()
    assert status["status"] == "rejected" and [r["code"] for r in status["reasons"]] == ["empty"]


async def test_resubmitting_a_document_replaces_its_chunks(client_a: httpx.Client, events: EventWatcher) -> None:
    doc_id = f"replace-{uuid.uuid4().hex[:8]}"
    await submit_and_wait(client_a, events, doc_id, "The old colour of the Quillow bridge was vermilion.")
    events.seen.clear()
    await submit_and_wait(client_a, events, doc_id, "The new colour of the Quillow bridge is ultramarine.")
    assert client_a.get(f"/v1/documents/{doc_id}").json()["version"] == 2
    hits = client_a.post("/v1/search", json={"query": "Quillow bridge colour", "top_k": 10}).json()["hits"]
    texts = [h["text"] for h in hits if h["document_id"] == doc_id]
    assert texts == ["The new colour of the Quillow bridge is ultramarine."]
    assert client_a.delete(f"/v1/documents/{doc_id}").status_code == 202
    await events.wait_for("gyre.index.deleted", doc_id)
    hits = client_a.post("/v1/search", json={"query": "Quillow bridge colour", "top_k": 10}).json()["hits"]
    assert all(h["document_id"] != doc_id for h in hits)


def test_the_openai_package_works_against_the_gateway(stack: LocalStack, tenant_a: Tenant, zorbulon_id: str) -> None:
    client = openai.OpenAI(base_url=f"{stack.gateway_url}/v1", api_key=tenant_a.key)
    completion = client.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=48,
        messages=[{"role": "user", "content": "Who invented the Zorbulon protocol?"}],
    )
    assert "Castellane" in (completion.choices[0].message.content or ""), completion
    assert zorbulon_id in [c["document_id"] for c in (completion.model_extra or {})["citations"]]
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=24, stream=True, extra_body={"retrieval": False},
            messages=[{"role": "user", "content": "What is the capital of France?"}],
        )
        if chunk.choices
    ]
    assert len(pieces) >= 2 and "Paris" in "".join(pieces), pieces
    embeddings = client.embeddings.create(model="all-minilm-l6-v2", input=["lighthouse clocks", "solar power"])
    assert len(embeddings.data) == 2 and len(embeddings.data[0].embedding) == 384
    assert {m.id for m in client.models.list().data} >= {"all-minilm-l6-v2", "smollm2-135m-instruct"}
