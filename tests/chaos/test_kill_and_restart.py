"""Reliability (issue 3 point 12): SIGKILL embed or ingest in the middle of a large ingestion, restart it.

Through the gateway, 300 distinct Markdown documents (300-1500 words, up to ~10 chunks each) are
submitted; once a fifth of the way through (embed: documents indexed; ingest: documents accepted,
counted from NATS events, not guessed with sleeps) the service is SIGKILLed and restarted. Then
every document must end indexed exactly once:

- each one ``indexed`` at version 1 (a redelivered submission must not make a version 2), with
  the registry's chunk count equal to its ``DocumentAccepted.chunk_count``;
- points in the index == the sum of those chunk counts (no lost, no duplicate points);
- a search finds a sample of them; no dead letters; nothing left pending on the consumers.

DocumentIndexed events are counted per document from the GYRE_INDEX stream: more than one for a
document is allowed only where its redelivery came after JetStream's duplicate window (checked),
and reported. The summary line (`-s`) gives the figures: progress at the kill, time to ready and
to recovery, the longest wait for the next indexed document after the restart (the killed
process's unacknowledged messages come back after the consumer's ack wait).

Slow (a few minutes on 2 cores): not part of `just test`; run it with `just chaos`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from gyre_cli.stack import LocalStack
from gyre_contracts import DeadLetter, DocumentAccepted, DocumentIndexed, DocumentRejected, decode_event
from tests.support.models import embedder_tokenizer_path
from tests.support.stack import running_stack_async

DOCUMENTS = 300
KILL_AT = DOCUMENTS // 5  # a fifth of the way through the killed service's work
WORDS = (300, 1500)
SUBMIT_CONCURRENCY = 8
PROGRESS_TIMEOUT_S = 240.0
RECOVERY_TIMEOUT_S = 420.0  # generous: a loaded 2-core machine embeds ~10 chunks/s
SPOT_CHECKS = 10
KEY = "chaos-test-key"


@pytest_asyncio.fixture(loop_scope="session")
async def stack() -> AsyncIterator[LocalStack]:
    """A fresh stack per test (the counts checked are then the test's alone), on free ports in a temp dir.

    Started and stopped in a thread, so the test's event loop keeps collecting NATS events meanwhile.
    """
    async with running_stack_async("gyre-chaos-", {"GYRE_API_KEYS": f"{KEY}:chaos"}) as local:
        yield local


# ---------------------------------------------------------------- the corpus


def vocabulary() -> list[str]:
    """Whole English words of the embedding model's vocabulary, most frequent first (one token each)."""
    tokenizer = json.loads(embedder_tokenizer_path().read_text())
    return [w for w in tokenizer["model"]["vocab"] if re.fullmatch(r"[a-z]{3,12}", w)]


def codename(index: int) -> str:
    """A made-up word unique to one document (letters only: digits could read as phone numbers)."""
    letters = ""
    n = index
    for _ in range(3):
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
    return "zorq" + letters


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str
    codename: str
    probe: str = ""  # words of one paragraph, for a search that should find this document


def make_document(index: int, words: list[str], cum_weights: list[float]) -> Document:
    """Deterministic Markdown: title, headed sections, paragraphs of Zipf-distributed vocabulary words.

    Independent draws from a ~20k-word vocabulary share almost no 5-word shingles, so no two
    documents come near the ingest service's near-duplicate threshold.
    """
    rng = random.Random(f"gyre-chaos-{index}")
    name = codename(index)
    title = f"{name.capitalize()} {' '.join(rng.choices(words[200:], k=2))}"
    target = rng.randint(*WORDS)
    parts = [f"# {title}", ""]
    paragraphs: list[str] = []
    count = 0
    while count < target:
        if not paragraphs or rng.random() < 0.3:
            parts += [f"## {' '.join(rng.choices(words[100:], k=rng.randint(2, 4))).capitalize()}", ""]
        sentences = []
        for _ in range(rng.randint(3, 7)):
            sentence = rng.choices(words, cum_weights=cum_weights, k=rng.randint(8, 20))
            if rng.random() < 0.2:
                sentence[rng.randrange(len(sentence))] = name
            count += len(sentence)
            sentences.append(" ".join(sentence).capitalize() + ".")
        paragraph = " ".join(sentences)
        paragraphs.append(paragraph)
        parts += [paragraph, ""]
    probe_words = rng.choice(paragraphs).rstrip(".").split()[:8]
    return Document(
        id=f"chaos/{index:03d}", title=title, text="\n".join(parts), codename=name, probe=" ".join(probe_words)
    )


def corpus() -> list[Document]:
    words = vocabulary()
    cum_weights = list(itertools.accumulate(1.0 / (rank + 20) for rank in range(len(words))))
    return [make_document(i, words, cum_weights) for i in range(DOCUMENTS)]


def test_corpus_is_distinct_and_sized() -> None:
    """The corpus itself: ids and codenames unique, sizes in range, no shared 5-word shingles to speak of."""
    docs = corpus()
    assert len({d.id for d in docs}) == len({d.codename for d in docs}) == DOCUMENTS
    sizes = [len(re.findall(r"\w+", d.text)) for d in docs]
    assert min(sizes) >= WORDS[0] and max(sizes) <= WORDS[1] + 200

    def shingles(text: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", text.lower())
        return {tuple(w[i : i + 5]) for i in range(len(w) - 4)}

    sample = [shingles(d.text) for d in docs[:40]]
    worst = max(len(a & b) / len(a | b) for i, a in enumerate(sample) for b in sample[i + 1 :])
    assert worst < 0.05


# ---------------------------------------------------------------- watching the stack's events


@dataclass
class Progress:
    """Events of the run, per document id: from the streams (what was stored) and as published."""

    accepted: dict[str, list[DocumentAccepted]] = field(default_factory=lambda: defaultdict(list))
    rejected: dict[str, list[DocumentRejected]] = field(default_factory=lambda: defaultdict(list))
    indexed: dict[str, list[DocumentIndexed]] = field(default_factory=lambda: defaultdict(list))
    published: Counter[str] = field(default_factory=Counter)  # core NATS: every publish, duplicates included
    submitted: set[str] = field(default_factory=set)
    indexed_times: list[float] = field(default_factory=list)  # monotonic arrival of each DocumentIndexed
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_stored(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        if msg.subject.endswith("ingest.accepted"):
            accepted = decode_event(msg.data, DocumentAccepted, headers)
            self.accepted[accepted.document_id].append(accepted)
        elif msg.subject.endswith("ingest.rejected"):
            rejected = decode_event(msg.data, DocumentRejected, headers)
            self.rejected[rejected.document_id].append(rejected)
        elif msg.subject.endswith("index.updated"):
            indexed = decode_event(msg.data, DocumentIndexed, headers)
            self.indexed[indexed.document_id].append(indexed)
            self.indexed_times.append(time.monotonic())
        self.changed.set()

    async def until(self, done: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(what)
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
            except TimeoutError:
                pass


async def watch(js: JetStreamContext, nc: NATS, progress: Progress) -> None:
    """Ordered consumers on the streams (what JetStream kept), core subscriptions (what was published)."""

    async def stored(msg: Msg) -> None:
        progress.on_stored(msg)

    async def published(msg: Msg) -> None:
        progress.published[msg.subject] += 1

    for subject in ("gyre.ingest.accepted", "gyre.ingest.rejected", "gyre.index.updated"):
        await js.subscribe(subject, cb=stored, ordered_consumer=True)
    for subject in ("gyre.ingest.accepted", "gyre.embed.requested", "gyre.index.updated"):
        await nc.subscribe(subject, cb=published)


async def submit_all(client: httpx.AsyncClient, docs: list[Document], progress: Progress) -> None:
    slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)

    async def submit(doc: Document) -> None:
        async with slots:
            response = await client.post(
                "/v1/documents",
                json={"id": doc.id, "text": doc.text, "content_type": "text/markdown", "title": doc.title},
            )
        assert response.status_code == 202, response.text
        progress.submitted.add(doc.id)
        progress.changed.set()

    await asyncio.gather(*(submit(d) for d in docs))


async def dead_letters(js: JetStreamContext) -> list[DeadLetter]:
    info = await js.stream_info("GYRE_DLQ")
    if not info.state.messages:
        return []
    sub = await js.subscribe("gyre.dlq.>", ordered_consumer=True)
    letters = []
    for _ in range(info.state.messages):
        msg = await sub.next_msg(timeout=5)
        letters.append(decode_event(msg.data, DeadLetter, dict(msg.headers or {})))
    await sub.unsubscribe()
    return letters


# ---------------------------------------------------------------- the test


@pytest.mark.timeout(900)
@pytest.mark.parametrize("victim", ["embed", "ingest"])
async def test_sigkill_mid_ingestion_loses_and_duplicates_nothing(victim: str, stack: LocalStack) -> None:
    docs = corpus()
    by_id = {d.id: d for d in docs}
    progress = Progress()
    nc = await nats.connect(stack.nats_url)
    js = nc.jetstream()
    await watch(js, nc, progress)
    client = httpx.AsyncClient(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    try:
        started = time.monotonic()
        submitting = asyncio.create_task(submit_all(client, docs, progress))

        # 1. A fifth of the way through the victim's work.
        done_by_victim = progress.indexed if victim == "embed" else progress.accepted
        await progress.until(
            lambda: len(done_by_victim) >= KILL_AT or (submitting.done() and submitting.exception() is not None),
            PROGRESS_TIMEOUT_S, f"{victim} did not get through {KILL_AT} documents in {PROGRESS_TIMEOUT_S:.0f} s",
        )
        if submitting.done():
            submitting.result()  # a failed submission fails the test here
        at_kill = {
            "submitted": len(progress.submitted), "accepted": len(progress.accepted),
            "indexed": len(progress.indexed), "s_after_first_submit": round(time.monotonic() - started, 1),
        }
        assert len(progress.indexed) < DOCUMENTS, "the ingestion finished before the kill: nothing was interrupted"

        # 2. SIGKILL, restart.
        killed_at = time.monotonic()
        exit_status = await asyncio.to_thread(stack.kill, victim, signal.SIGKILL)
        assert exit_status == -signal.SIGKILL
        await asyncio.to_thread(stack.restart, victim)
        ready_s = time.monotonic() - killed_at
        await submitting

        # 3. Every submitted document comes out the other end (indexed, or rejected: checked below).
        def finished() -> bool:
            return all(d.id in progress.indexed or d.id in progress.rejected for d in docs)

        try:
            await progress.until(finished, RECOVERY_TIMEOUT_S, "not every document was indexed")
        except TimeoutError:
            missing = [d.id for d in docs if d.id not in progress.indexed and d.id not in progress.rejected]
            consumers = {
                name: await js.consumer_info(stream, name)
                for stream, name in (("GYRE_INGEST", "ingest"), ("GYRE_EMBED", "embed"))
            }
            pytest.fail(
                f"{len(missing)} of {DOCUMENTS} documents not indexed {RECOVERY_TIMEOUT_S:.0f} s after the "
                f"restart of {victim} (e.g. {missing[:5]}); consumers: "
                + "; ".join(
                    f"{n}: pending {c.num_pending}, ack pending {c.num_ack_pending}, redelivered {c.num_redelivered}"
                    for n, c in consumers.items()
                )
                + f"\n--- {victim} log ---\n{stack.log_tail(victim, 40)}"
            )
        recovered_s = time.monotonic() - killed_at
        # The longest wait for the next document after the restart: the killed process's unacknowledged
        # messages come back only after the consumer's ack wait.
        after = [killed_at + ready_s, *(t for t in progress.indexed_times if t > killed_at + ready_s)]
        longest_stall_s = max((b - a for a, b in itertools.pairwise(after)), default=0.0)

        # 4. Nothing rejected: the corpus is clean and distinct, a rejection would be a redelivery
        #    mistaken for a duplicate of itself.
        assert not progress.rejected, {i: [r.code for r in e[0].reasons] for i, e in progress.rejected.items()}

        # 5. Accepted once per document as version 1 (a redelivery may republish the same event; JetStream
        #    drops it within its duplicate window), the registry agrees, indexed at version 1.
        accepted_chunks: dict[str, int] = {}
        for doc in docs:
            events = progress.accepted[doc.id]
            assert {(e.version, e.chunk_count) for e in events} == {(1, events[0].chunk_count)}, (doc.id, events)
            accepted_chunks[doc.id] = events[0].chunk_count
        slots = asyncio.Semaphore(16)

        async def status(doc_id: str) -> dict[str, object]:
            async with slots:
                response = await client.get(f"/v1/documents/{doc_id}")
            assert response.status_code == 200, response.text
            body: dict[str, object] = response.json()
            return body

        records = await asyncio.gather(*(status(d.id) for d in docs))
        wrong = [
            (r["document_id"], r["status"], r["version"], r["chunks"], accepted_chunks[str(r["document_id"])])
            for r in records
            if (r["status"], r["version"], r["chunks"]) != ("indexed", 1, accepted_chunks[str(r["document_id"])])
        ]
        assert not wrong, f"(id, status, version, chunks, accepted chunk_count): {wrong[:10]}"
        indexed_versions = {e.version for events in progress.indexed.values() for e in events}
        assert indexed_versions == {1}
        for doc_id, indexed_events in progress.indexed.items():
            assert {e.chunk_count for e in indexed_events} == {accepted_chunks[doc_id]}, (doc_id, indexed_events)
        # A document indexed twice is allowed only where the redelivery came after JetStream's duplicate
        # window (the event's id is derived from document and version, so within it the copy is dropped).
        window_s = (await js.stream_info("GYRE_INDEX")).config.duplicate_window or 0.0
        several_indexed = sorted(i for i, e in progress.indexed.items() if len(e) > 1)
        for doc_id in several_indexed:
            times = sorted(e.indexed_at for e in progress.indexed[doc_id])
            gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
            assert min(gaps) >= window_s - 5, f"{doc_id} indexed again {min(gaps):.0f} s later, inside the window"

        # 6. The index holds exactly the documents' chunks (the stack is this test's alone).
        total_chunks = sum(accepted_chunks.values())
        stats = (await client.get(f"{stack.url_of('embed')}/stats")).json()
        assert stats["points"] == total_chunks, f"{stats['points']} points for {total_chunks} chunks"

        # 7. Searchable: a document's made-up name and a few of its words find it.
        for doc in docs[:: DOCUMENTS // SPOT_CHECKS]:
            response = await client.post("/v1/search", json={"query": f"{doc.codename} {doc.probe}", "top_k": 5})
            assert response.status_code == 200, response.text
            found = [h["document_id"] for h in response.json()["hits"]]
            assert doc.id in found, (doc.id, doc.probe, found)
            assert all(h["document_id"] in by_id for h in response.json()["hits"])

        # 8. No dead letters; nothing left unacknowledged.
        letters = await dead_letters(js)
        assert not letters, [(d.service, d.original_subject, d.error, d.attempts) for d in letters]
        for stream, name in (("GYRE_INGEST", "ingest"), ("GYRE_EMBED", "embed")):
            info = await js.consumer_info(stream, name)
            assert (info.num_pending, info.num_ack_pending) == (0, 0), (name, info)
        embed_stream = await js.stream_info("GYRE_EMBED")

        summary = {
            "victim": victim,
            "documents": DOCUMENTS,
            "chunks": total_chunks,
            "points": stats["points"],
            "at_kill": at_kill,
            "restart_ready_s": round(ready_s, 1),
            "recovery_s": round(recovered_s, 1),
            "longest_stall_after_restart_s": round(longest_stall_s, 1),
            "total_s": round(time.monotonic() - started, 1),
            "chunks_ready_stored": embed_stream.state.messages,
            "published": dict(progress.published),
            "documents_indexed_more_than_once": len(several_indexed),
            "indexed_events_stored": sum(len(e) for e in progress.indexed.values()),
        }
        print("\nchaos summary:", msgspec.json.encode(summary).decode())
    finally:
        await client.aclose()
        await nc.drain()
