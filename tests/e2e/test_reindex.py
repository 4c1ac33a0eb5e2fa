"""`gyre reindex` on the real stack: a collection rebuilt from the stored events is swapped in; search never stops."""

from __future__ import annotations

import asyncio
import os
import random
import threading
import uuid

import httpx
import msgspec
import nats
import pytest

from gyre_cli.stack import LocalStack, find_executable
from gyre_contracts import ReindexCompleted, ReindexProgress, decode_event
from tests.e2e.conftest import OPERATOR_KEY, Tenant
from tests.support.stack import EventWatcher

pytestmark = pytest.mark.e2e

DOCUMENTS = 30
PARAGRAPHS = 14  # ~8 chunks a document: enough for the rebuild to take seconds, during which we act
VOCABULARY = """
river stone lantern harbour meadow copper winter orchard signal bridge archive beacon compass valley
engine garden market thunder silver window forest candle pebble ladder island mirror basket feather
quarry tunnel spindle barley saddle kettle anchor glacier cobble heron thistle falcon marble velvet
granite cedar walnut hollow summit canyon prairie delta estuary lagoon plateau ridge harvest furnace
workshop ledger scholar pilgrim courier merchant weaver potter miller baker sailor keeper warden
measures carries gathers follows signals records repairs divides returns watches guards counts sends
quietly slowly early often rarely gently firmly kindly boldly plainly
northern ancient narrow distant hidden crowded golden wooden hollow steady patient careful
""".split()
SYLLABLES = ["ka", "lo", "mi", "ra", "tu", "ve", "zo", "ni", "pe", "su"]


def signature(i: int) -> str:
    """A made-up word found in document ``i`` only: a keyword search for it must find that document."""
    return f"zor{SYLLABLES[i // 10 % 10]}{SYLLABLES[i % 10]}quin"


def document_text(seed: str, i: int) -> str:
    rng = random.Random(f"{seed}-{i}")
    parts = [f"# Archive record {i}", f"The keeper of this archive guards the {signature(i)} ledger."]
    for p in range(PARAGRAPHS):
        if p % 4 == 0:
            parts.append(f"## Part {p // 4 + 1}")
        sentences = [
            " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(8, 14))).capitalize() + "."
            for _ in range(5)
        ]
        parts.append(" ".join(sentences))
    return "\n\n".join(parts)


def embed_stats(stack: LocalStack) -> dict[str, object]:
    # /stats is for operators: the stack's GYRE_API_KEYS are operator keys of every service
    operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
    response = httpx.get(f"{stack.url_of('embed')}/stats", headers=operator, timeout=10)
    assert response.status_code == 200, response.text
    stats: dict[str, object] = response.json()
    return stats


def found(client: httpx.Client, query: str, document_id: str) -> bool:
    response = client.post("/v1/search", json={"query": query, "top_k": 5})
    assert response.status_code == 200, response.text
    return document_id in [h["document_id"] for h in response.json()["hits"]]


class SearchLoop:
    """Searches for one known document over and over on its own thread, recording every answer."""

    def __init__(self, base_url: str, headers: dict[str, str], query: str, document_id: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers=headers, timeout=60)
        self.query, self.document_id = query, document_id
        self.answers: list[tuple[int, bool]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            response = self.client.post("/v1/search", json={"query": self.query, "top_k": 5})
            hits = response.json().get("hits", []) if response.status_code == 200 else []
            self.answers.append((response.status_code, self.document_id in [h["document_id"] for h in hits]))

    def __enter__(self) -> SearchLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        self.client.close()


async def indexed_chunk_total(stack: LocalStack) -> int:
    """Chunks of every document that search can find, all tenants, read from the document registry."""
    nc = await nats.connect(stack.nats_url)
    try:
        kv = await nc.jetstream().key_value("gyre_documents")
        total = 0
        for key in await kv.keys():
            entry = await kv.get(key)
            record = msgspec.json.decode(entry.value or b"{}")
            if record.get("status") == "indexed" or (
                record.get("status") in ("rejected", "pending") and record.get("indexed_at")
            ):
                total += int(record.get("chunks", 0))
        return total
    finally:
        await nc.close()


async def start_cli_reindex(stack: LocalStack, *args: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "GYRE_NATS_URL": stack.nats_url}
    return await asyncio.create_subprocess_exec(
        find_executable("gyre"), "reindex", *args, "--wait", "--timeout", "300",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )


async def request_id_of(process: asyncio.subprocess.Process) -> str:
    """The CLI's first line: ``reindex requested: building <collection> (request <id>)``."""
    assert process.stdout is not None
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("reindex requested"), line
    return line.rsplit("request ", 1)[1].strip(" )\n")


async def test_reindex_builds_a_new_collection_and_swaps_it_in_while_search_keeps_answering(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client, events: EventWatcher
) -> None:
    run = uuid.uuid4().hex[:6]
    ids = [f"reindex-{run}-{i:02d}" for i in range(DOCUMENTS)]
    for i, doc_id in enumerate(ids):
        response = client_a.post("/v1/documents", json={"id": doc_id, "text": document_text(run, i),
                                                       "content_type": "text/markdown"})
        assert response.status_code == 202, response.text
    for doc_id in ids:
        await events.wait_for("gyre.index.updated", doc_id, timeout_s=300)
    known, deleted_id, new_id = ids[0], ids[-1], f"reindex-{run}-new"
    assert found(client_a, signature(0), known) and found(client_a, signature(DOCUMENTS - 1), deleted_id)
    before = embed_stats(stack)
    collection = f"gyre_chunks_e2e_{run}"

    with SearchLoop(stack.gateway_url, tenant_a.headers, signature(0), known) as searches:
        cli = await start_cli_reindex(stack, "--collection", collection)
        request_id = await request_id_of(cli)
        await events.wait_for("gyre.index.reindex_progress", request_id, timeout_s=60)
        # While the rebuild runs: a new document arrives and another one is deleted.
        response = client_a.post("/v1/documents", json={"id": new_id, "text": document_text(run, DOCUMENTS),
                                                       "content_type": "text/markdown"})
        assert response.status_code == 202, response.text
        assert client_a.delete(f"/v1/documents/{deleted_id}").status_code in (200, 202)
        await events.wait_for("gyre.index.updated", new_id)
        await events.wait_for("gyre.index.deleted", deleted_id)
        finished = [s for s, h, _ in events.seen if s == "gyre.index.reindexed" and h.get("ce-subject") == request_id]
        assert not finished, (
            "the rebuild finished before the live changes: they did not test writing to both collections; "
            "make the corpus larger (DOCUMENTS, PARAGRAPHS)"
        )
        completed = decode_event(await events.wait_for("gyre.index.reindexed", request_id, timeout_s=300),
                                 ReindexCompleted)
        out, err = await asyncio.wait_for(cli.communicate(), 60)
        assert cli.returncode == 0, err.decode()
        assert f"collection {collection} now serves search" in out.decode()

    progress = [decode_event(d, ReindexProgress) for s, h, d in events.seen
                if s == "gyre.index.reindex_progress" and h.get("ce-subject") == request_id]
    assert progress and progress[-1].replayed_events >= DOCUMENTS
    assert len(searches.answers) >= 5, searches.answers
    assert all(status == 200 for status, _ in searches.answers), searches.answers
    assert all(hit for _, hit in searches.answers), searches.answers

    after = embed_stats(stack)
    assert before["collection"] != collection and after["collection"] == collection
    assert completed.previous_collection == before["collection"] and completed.missing_count == 0
    assert not (stack.data_dir / "qdrant" / str(before["collection"])).exists()
    assert after["points"] == completed.points == await indexed_chunk_total(stack)
    assert found(client_a, signature(DOCUMENTS), new_id)
    assert not found(client_a, signature(DOCUMENTS - 1), deleted_id)
    missed = [doc_id for i, doc_id in enumerate(ids[:-1]) if not found(client_a, signature(i), doc_id)]
    assert not missed

    # The stack goes on working on the new collection: documents are indexed into it.
    later = f"reindex-{run}-later"
    assert client_a.post("/v1/documents", json={"id": later, "text": document_text(run, DOCUMENTS + 1),
                                                "content_type": "text/markdown"}).status_code == 202
    await events.wait_for("gyre.index.updated", later)
    assert found(client_a, signature(DOCUMENTS + 1), later)


async def test_reindexing_into_the_active_collection_is_refused(stack: LocalStack, events: EventWatcher) -> None:
    active = str(embed_stats(stack)["collection"])
    cli = await start_cli_reindex(stack, "--collection", active)
    _, err = await asyncio.wait_for(cli.communicate(), 120)
    assert cli.returncode == 1
    assert "is the active collection already" in err.decode() and "gave up" in err.decode()
    assert embed_stats(stack)["collection"] == active

