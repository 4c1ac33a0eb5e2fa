"""Answer quality end to end on the real stack and models: the README's example, evaluations over HTTP and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e
GYRE = str(Path(sys.executable).parent / "gyre")

FERRY = """# The Ostrava ferry

The Ostrava ferry crosses the Lindholm strait twice a day, at seven in the morning and at five in the evening.
Tickets are sold only at the harbour kiosk, which accepts cash and the Lindholm transit card.
Bicycles travel free on the lower deck.
"""


async def test_the_readme_example_answers_qdrant_and_cites_its_document(
    client_a: httpx.Client, events: EventWatcher
) -> None:
    doc_id = f"hello-{uuid.uuid4().hex[:8]}"
    response = client_a.post("/v1/documents", json={
        "id": doc_id, "text": "Gyre stores documents in Qdrant and answers with citations."})
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.index.updated", doc_id)
    answer = client_a.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Where does Gyre store documents?"}]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "Qdrant" in body["choices"][0]["message"]["content"]
    assert doc_id in [c["document_id"] for c in body["citations"]]
    nonsense = client_a.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "qwxz zzkq florp vintrabulous?"}]}).json()
    assert nonsense["citations"] == []
    assert nonsense["choices"][0]["message"]["content"].startswith("I don't know")


def golden_jsonl(doc_id: str) -> str:
    items = [
        {"id": "kiosk", "question": "Where are tickets for the Ostrava ferry sold?",
         "answer": "Tickets are sold only at the harbour kiosk.", "must_include": ["kiosk"], "relevant": [doc_id]},
        {"id": "bicycles", "question": "Do bicycles pay on the Ostrava ferry?",
         "answer": "Bicycles travel free on the lower deck.", "must_include": ["free"], "relevant": [doc_id]},
        {"id": "strait", "question": "Which strait does the Ostrava ferry cross?",
         "must_include": ["Lindholm"], "relevant": [doc_id]},
        {"id": "nonsense", "question": "qwxz zzkq florp vintrabulous?", "answerable": False},
    ]
    return "\n".join(json.dumps(item) for item in items) + "\n"


async def test_an_evaluation_runs_a_golden_set_through_the_live_pipeline(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client, events: EventWatcher
) -> None:
    doc_id = f"ferry-{uuid.uuid4().hex[:8]}"
    response = client_a.post("/v1/documents", json={"id": doc_id, "text": FERRY, "content_type": "text/markdown"})
    assert response.status_code == 202, response.text
    await events.wait_for("gyre.index.updated", doc_id)

    malformed = client_a.put("/v1/evaluations/sets/ferry", content='{"question": "ok?"}\n{"question": 3}\n',
                             headers={"Content-Type": "application/x-ndjson"})
    assert malformed.status_code == 400 and "line 2" in malformed.text
    put = client_a.put("/v1/evaluations/sets/ferry", content=golden_jsonl(doc_id),
                       headers={"Content-Type": "application/x-ndjson"})
    assert put.status_code in (200, 201), put.text
    unknown = client_a.post("/v1/evaluations", json={"set": "nope"})
    assert unknown.status_code == 404 and "ferry" in unknown.text

    env = {**os.environ, "GYRE_GATEWAY_URL": stack.gateway_url, "GYRE_API_KEY": tenant_a.key}
    run = subprocess.run([GYRE, "eval", "run", "ferry", "--wait"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    evaluation_id = next(word for word in run.stdout.split() if word.startswith("eval-"))
    result = client_a.get(f"/v1/evaluations/{evaluation_id}").json()
    assert result["status"] == "completed" and result["progress"]["done"] == 4
    metrics = result["metrics"]
    assert metrics["unanswerable_refused"] == 1.0 and metrics["degenerate"] == 0.0
    assert metrics["recall_at_k"] == 1.0
    assert metrics["must_include"] >= 2 / 3  # the answers name the kiosk, the strait, that bicycles go free
    assert len(result["items"]) == 4 and all(row["score"]["answer"] for row in result["items"])
    report = client_a.get(f"/v1/evaluations/{evaluation_id}/report")
    assert report.status_code == 200 and "must_include" in report.text
