"""Reliability (issue 8): Gyre on a real 3-node NATS cluster (streams R3) loses a node under load.

Three ``nats-server`` processes on loopback form one JetStream cluster; the whole stack runs against
it (``GYRE_NATS_URL`` lists the three nodes, ``GYRE_STREAM_REPLICAS=3``). While 300 small distinct
documents are ingested through the gateway and chat requests run in a loop:

1. the node leading the GYRE_INGEST stream is SIGKILLed, left down while more documents arrive,
   then started again;
2. then a rolling restart: each node in turn is stopped (SIGTERM), started, and waited on until it
   has caught up, with a new batch of documents in flight each time.

After each phase, once everything is quiet: every document was accepted once and is ``indexed`` with
the chunk count ingest accepted, the index holds exactly the new chunks (no lost, no duplicate points),
no dead letters, nothing pending on the consumers; every chat request was either answered (200 with
content) or failed explicitly (a 4xx/5xx JSON error, or an SSE error event); none outlived the
client's timeout. A submission the gateway refused (5xx while the bus was re-electing) is sent again,
as a client following Retry-After would; such retries are counted. The gateway numbers a document's
versions when they are sent, so a document is at version 1 unless its submission was refused and
sent again: then at most at 1 + its refusals (a refused try may have taken a number), never below.

The summary lines (`-s`) give the figures for docs/benchmarks.md. Slow: run with `just chaos`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import signal
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats.errors
import pytest
import pytest_asyncio

from gyre_cli.stack import LocalStack
from gyre_contracts import DocumentAccepted, DocumentIndexed
from gyre_runtime.bus.connection import Bus, connect, ensure_topology
from gyre_runtime.bus.credentials import ADMIN, default_credentials_dir, ensure_stack_credentials, write_authorization
from gyre_runtime.bus.permissions import Naming
from gyre_runtime.bus.stored import stored_events
from gyre_runtime.bus.topology import STREAMS
from gyre_runtime.config import load_settings
from tests.chaos.test_kill_and_restart import Document, codename, dead_letters, vocabulary
from tests.support.nats_cluster import NatsCluster
from tests.support.stack import new_stack

DOCUMENTS = 300  # per phase
WORDS = (50, 90)  # one chunk each (GYRE_CHUNK_TOKENS 200)
SUBMIT_CONCURRENCY = 8
SUBMIT_RETRY_S = 120.0  # a client keeps retrying a refused submission this long
CHAT_WORKERS = 2
CHAT_MAX_TOKENS = 12
GATEWAY_TIMEOUT_S = 45  # first token / reply: the gateway answers 504 after this
CHAT_CLIENT_TIMEOUT_S = 150.0  # a chat that outlives this hung: the test fails
PROGRESS_TIMEOUT_S = 300.0
QUIET_TIMEOUT_S = 420.0
KEY = "cluster-chaos-key"
STREAM_NAMES = [spec.name for spec in STREAMS]


# ---------------------------------------------------------------- the cluster and the stack


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gyre-cluster-chaos-") as path:
        yield Path(path)


@pytest.fixture(scope="module")
def admin_urls(data_dir: Path, cluster: NatsCluster) -> str:
    """The cluster's URLs with the admin credential: the bus refuses a connection without one."""
    admin = ensure_stack_credentials(default_credentials_dir(data_dir))[ADMIN]
    return ",".join(url.replace("nats://", f"nats://{admin.user}:{admin.password}@", 1) for url in cluster.urls)


@pytest.fixture(scope="module")
def cluster(data_dir: Path) -> Iterator[NatsCluster]:
    """Three nodes with the users and permissions `gyre bus credentials init` renders: no anonymous access."""
    credentials = default_credentials_dir(data_dir)
    ensure_stack_credentials(credentials)
    auth = write_authorization(credentials, data_dir / "nats-auth.conf", Naming())
    with NatsCluster(include=auth) as running:
        yield running


async def declare_topology(admin_urls: str) -> None:
    """Streams, buckets and object stores, R3, declared once before the services start (an operator's step).

    Eight services declaring R3 streams at once on a fresh cluster can outlast JetStream's API timeout
    (5 s) on a loaded machine, and a service whose start failed does not try again; retried here.
    """
    settings = load_settings({}, nats_url=admin_urls, stream_replicas=3)
    connection = await connect(settings, name="chaos-topology")
    try:
        for attempt in itertools.count(1):
            try:
                await ensure_topology(connection)
                return
            except (nats.errors.Error, TimeoutError):
                if attempt == 10:
                    raise
                await asyncio.sleep(1.0)
    finally:
        await connection.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stack(cluster: NatsCluster, data_dir: Path, admin_urls: str) -> AsyncIterator[LocalStack]:
    """The Gyre processes against the cluster, each with its own credential; started in a thread so the
    event loop keeps running."""
    env = {
        "GYRE_API_KEYS": f"{KEY}:chaos",
        "GYRE_FIRST_TOKEN_TIMEOUT_S": str(GATEWAY_TIMEOUT_S),
        "GYRE_REQUEST_TIMEOUT_S": str(GATEWAY_TIMEOUT_S),
        "GYRE_RATE_LIMIT_PER_MINUTE": "0",  # the test polls every document's status
    }
    local = new_stack(data_dir, env, external_nats_urls=tuple(cluster.urls), stream_replicas=3)
    try:
        await declare_topology(admin_urls)
        await asyncio.to_thread(local.start)
        await asyncio.to_thread(cluster.wait_stream_leaders, STREAM_NAMES)
        yield local
    finally:
        await asyncio.to_thread(local.stop)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def bus(admin_urls: str, stack: LocalStack) -> AsyncIterator[Bus]:
    """The test's own connection to all three nodes (it reconnects through the node losses)."""
    connection = await connect(load_settings({}, nats_url=admin_urls, stream_replicas=3), name="chaos")
    yield connection
    await connection.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(stack: LocalStack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=CHAT_CLIENT_TIMEOUT_S
    ) as http:
        yield http


# ---------------------------------------------------------------- the corpus: small distinct documents


def small_corpus(first: int, count: int) -> list[Document]:
    """``count`` one-chunk Markdown documents, each with a made-up name of its own, from independent draws."""
    words = vocabulary()
    cum_weights = list(itertools.accumulate(1.0 / (rank + 20) for rank in range(len(words))))
    docs = []
    for index in range(first, first + count):
        rng = random.Random(f"gyre-cluster-chaos-{index}")
        name = codename(index)
        sentences, total = [], rng.randint(*WORDS)
        while total > 0:
            sentence = rng.choices(words, cum_weights=cum_weights, k=min(total, rng.randint(8, 16)))
            total -= len(sentence)
            sentences.append(" ".join(sentence).capitalize() + ".")
        title = f"{name.capitalize()} {' '.join(rng.choices(words[200:], k=2))}"
        text = f"# {title}\n\n{name.capitalize()} is described here. " + " ".join(sentences) + "\n"
        docs.append(Document(id=f"cluster/{index:04d}", title=title, text=text, codename=name))
    return docs


# ---------------------------------------------------------------- load: submissions and chats


@dataclass
class Submitter:
    """Submits documents as a gate lets them through; retries what the gateway refuses with a 5xx or 429."""

    client: httpx.AsyncClient
    docs: list[Document]
    allowed: int = 0
    submitted: set[str] = field(default_factory=set)
    refusals: Counter[str] = field(default_factory=Counter)  # "503 publish_failed", "transport ConnectError" ...
    refused: Counter[str] = field(default_factory=Counter)  # per document id
    retried: set[str] = field(default_factory=set)
    _gate: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def allow(self, count: int) -> None:
        async with self._gate:
            self.allowed = min(len(self.docs), self.allowed + count)
            self._gate.notify_all()

    async def run(self) -> None:
        slots = asyncio.Semaphore(SUBMIT_CONCURRENCY)

        async def submit(position: int, doc: Document) -> None:
            async with self._gate:
                await self._gate.wait_for(lambda: position < self.allowed)
            async with slots:
                await self._submit(doc)

        await asyncio.gather(*(submit(i, d) for i, d in enumerate(self.docs)))

    async def _submit(self, doc: Document) -> None:
        body = {"id": doc.id, "text": doc.text, "content_type": "text/markdown", "title": doc.title}
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while True:
            try:
                response = await self.client.post("/v1/documents", json=body, timeout=60)
                if response.status_code == 202:
                    self.submitted.add(doc.id)
                    return
                assert response.status_code >= 500 or response.status_code == 429, response.text
                reason = f"{response.status_code} {response.json()['error'].get('code')}"
            except httpx.TransportError as exc:
                reason = f"transport {type(exc).__name__}"
            self.refusals[reason] += 1
            self.refused[doc.id] += 1
            self.retried.add(doc.id)
            assert time.monotonic() < deadline, f"{doc.id} refused for {SUBMIT_RETRY_S:.0f} s: {self.refusals}"
            await asyncio.sleep(1.0)


@dataclass
class Chats:
    """Chat requests in a loop, each classified: answered, failed explicitly, hung, or malformed."""

    client: httpx.AsyncClient
    questions: list[str]
    answered: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    hung: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    in_flight: int = 0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def total(self) -> int:
        return self.answered + sum(self.failed.values()) + len(self.hung) + len(self.malformed)

    async def run(self) -> None:
        await asyncio.gather(*(self._loop(worker) for worker in range(CHAT_WORKERS)))

    def stop(self) -> None:
        self._stop.set()

    async def _loop(self, worker: int) -> None:
        for turn in itertools.count():
            if self._stop.is_set():
                return
            question = self.questions[(turn * CHAT_WORKERS + worker) % len(self.questions)]
            body = {
                "messages": [{"role": "user", "content": question}],
                "max_tokens": CHAT_MAX_TOKENS,
                "stream": turn % 2 == 1,
            }
            self.in_flight += 1
            try:
                await self._ask(body)
            except httpx.TimeoutException as exc:
                self.hung.append(f"{question!r}: {type(exc).__name__}")
            except httpx.TransportError as exc:
                self.malformed.append(f"{question!r}: the gateway dropped the connection ({type(exc).__name__})")
            finally:
                self.in_flight -= 1

    async def _ask(self, body: dict[str, Any]) -> None:
        if not body["stream"]:
            response = await self.client.post("/v1/chat/completions", json=body)
            if response.status_code == 200:
                content = response.json()["choices"][0]["message"]["content"]
                self._answered_if(bool(content and content.strip()), f"200 without content: {response.text[:200]}")
            else:
                self._failed(response.status_code, response.text)
            return
        async with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                self._failed(response.status_code, (await response.aread()).decode(errors="replace"))
                return
            events = [line[6:] async for line in response.aiter_lines() if line.startswith("data: ")]
        if events[-1:] != ["[DONE]"]:
            self.malformed.append(f"stream ended without [DONE]: {events[-3:]}")
            return
        chunks = [json.loads(e) for e in events[:-1]]
        errors = [c["error"] for c in chunks if "error" in c]
        if errors:
            self.failed[f"sse {errors[0].get('code')}"] += 1
            return
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
        self._answered_if(bool(text.strip()), f"stream without content: {events[:3]}")

    def _answered_if(self, has_content: bool, otherwise: str) -> None:
        if has_content:
            self.answered += 1
        else:
            self.malformed.append(otherwise)

    def _failed(self, status: int, text: str) -> None:
        try:
            code = json.loads(text)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            self.malformed.append(f"{status} without a JSON error body: {text[:200]}")
            return
        if status < 400:
            self.malformed.append(f"{status}: {text[:200]}")
            return
        self.failed[f"{status} {code}"] += 1

    def summary(self) -> dict[str, Any]:
        return {"total": self.total, "answered": self.answered, "failed": dict(self.failed),
                "hung": len(self.hung), "malformed": len(self.malformed)}


# ---------------------------------------------------------------- watching progress and quiet


async def points(client: httpx.AsyncClient, stack: LocalStack) -> int:
    """The embed service's point count (retried: it answers 503 while it reconnects)."""
    for _ in range(60):
        with contextlib.suppress(httpx.TransportError):
            response = await client.get(f"{stack.url_of('embed')}/stats", timeout=10)
            if response.status_code == 200:
                return int(response.json()["points"])
        await asyncio.sleep(0.5)
    raise AssertionError(f"embed /stats did not answer:\n{stack.log_tail('embed')}")


async def until(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.5)


async def document_records(client: httpx.AsyncClient, ids: list[str]) -> list[dict[str, Any]]:
    slots = asyncio.Semaphore(16)

    async def record(doc_id: str) -> dict[str, Any]:
        async with slots:
            for _ in range(30):
                response = await client.get(f"/v1/documents/{doc_id}", timeout=30)
                if response.status_code == 200:
                    body: dict[str, Any] = response.json()
                    return body
                await asyncio.sleep(1.0)
        raise AssertionError(f"status of {doc_id}: {response.status_code} {response.text}")

    return list(await asyncio.gather(*(record(i) for i in ids)))


async def wait_quiet(client: httpx.AsyncClient, bus: Bus, docs: list[Document]) -> None:
    """Every document indexed or rejected in the registry, nothing left pending on ingest's and embed's consumers."""
    waiting = [d.id for d in docs]

    async def registry_settled() -> bool:
        nonlocal waiting
        records = await document_records(client, waiting)
        waiting = [r["document_id"] for r in records if r["status"] not in ("indexed", "rejected")]
        return not waiting

    async def consumers_idle() -> bool:
        for stream, name in (("GYRE_INGEST", "ingest"), ("GYRE_EMBED", "embed")):
            info = await bus.js.consumer_info(stream, name)
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    try:
        await until(registry_settled, QUIET_TIMEOUT_S, "documents left pending")
        await until(consumers_idle, 120, "consumers left with pending messages")
    except TimeoutError as exc:
        pytest.fail(f"{exc}: {len(waiting)} documents, e.g. {waiting[:5]}")


# ---------------------------------------------------------------- one phase: load, disruption, checks


@dataclass
class Phase:
    """The load of one phase and the figures it leaves."""

    name: str
    docs: list[Document]
    submitter: Submitter
    chats: Chats
    points_before: int
    started: float = field(default_factory=time.monotonic)
    disruptions: list[dict[str, Any]] = field(default_factory=list)

    async def indexed_chunks(self, client: httpx.AsyncClient, stack: LocalStack) -> int:
        return await points(client, stack) - self.points_before

    async def until_indexed(self, client: httpx.AsyncClient, stack: LocalStack, count: int) -> None:
        async def enough() -> bool:
            return await self.indexed_chunks(client, stack) >= count

        await until(enough, PROGRESS_TIMEOUT_S, f"{self.name}: fewer than {count} chunks indexed")

    async def until_chat_in_flight(self) -> None:
        async def asking() -> bool:
            return self.chats.in_flight > 0

        await until(asking, 60, "no chat request in flight")


async def stored(bus: Bus, stream: str, event_type: type[Any]) -> list[Any]:
    return [event async for event in stored_events(bus, stream, event_type)]


async def run_phase(
    name: str,
    docs: list[Document],
    stack: LocalStack,
    bus: Bus,
    client: httpx.AsyncClient,
    disrupt: Callable[[Phase], Awaitable[None]],
) -> dict[str, Any]:
    """Load (submissions through a gate, chats in a loop), the phase's disruption, quiet, then every check."""
    dead_before = len(await dead_letters(bus.js))
    phase = Phase(
        name, docs, Submitter(client, docs), Chats(client, [f"What is {d.codename}?" for d in docs]),
        points_before=await points(client, stack),
    )
    submitting = asyncio.create_task(phase.submitter.run())
    chatting = asyncio.create_task(phase.chats.run())
    try:
        await disrupt(phase)
        await phase.submitter.allow(len(docs))
        await submitting
        await wait_quiet(client, bus, docs)
        quiet_s = time.monotonic() - phase.started
    finally:
        phase.chats.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(chatting, CHAT_CLIENT_TIMEOUT_S + 30)
        submitting.cancel()

    ids = {d.id for d in docs}
    # Accepted once per document (a redelivery may store the same event again only after the duplicate
    # window; it carries the same version and chunk count), at version 1 unless a refused try took a number.
    accepted: dict[str, set[tuple[int, int]]] = {}
    for event in await stored(bus, "GYRE_INGEST", DocumentAccepted):
        if event.document_id in ids:
            accepted.setdefault(event.document_id, set()).add((event.version, event.chunk_count))
    assert set(accepted) == ids, f"never accepted: {sorted(ids - set(accepted))[:10]}"
    refused = phase.submitter.refused
    wrong_versions = {
        i: (a, refused[i]) for i, a in accepted.items() if len(a) != 1 or not 1 <= next(iter(a))[0] <= 1 + refused[i]
    }
    assert not wrong_versions, f"(accepted (version, chunks), refusals) of documents accepted twice: {wrong_versions}"
    versions = {i: next(iter(a))[0] for i, a in accepted.items()}
    chunks = {i: next(iter(a))[1] for i, a in accepted.items()}

    records = await document_records(client, sorted(ids))
    wrong = [
        (r["document_id"], r["status"], r["version"], r["chunks"], versions[r["document_id"]], chunks[r["document_id"]])
        for r in records
        if (r["status"], r["version"], r["chunks"]) != ("indexed", versions[r["document_id"]], chunks[r["document_id"]])
    ]
    assert not wrong, f"(id, status, version, chunks, accepted version, accepted chunk_count): {wrong[:10]}"

    indexed = Counter[str]()
    for event in await stored(bus, "GYRE_INDEX", DocumentIndexed):
        if event.document_id in ids:
            assert (event.version, event.chunk_count) == (versions[event.document_id], chunks[event.document_id]), event
            indexed[event.document_id] += 1

    total_chunks = sum(chunks.values())
    points_after = await points(client, stack)
    assert points_after - phase.points_before == total_chunks, (
        f"{points_after - phase.points_before} new points for {total_chunks} chunks"
    )

    letters = await dead_letters(bus.js)
    assert len(letters) == dead_before, [(d.service, d.original_subject, d.error) for d in letters[dead_before:]]

    chats = phase.chats
    assert not chats.hung, f"{len(chats.hung)} chat requests outlived {CHAT_CLIENT_TIMEOUT_S:.0f} s: {chats.hung[:3]}"
    assert not chats.malformed, chats.malformed[:5]
    assert chats.answered > 0, chats.summary()

    summary = {
        "phase": name,
        "documents": len(docs),
        "chunks": total_chunks,
        "seconds_to_quiet": round(quiet_s, 1),
        "documents_per_s": round(len(docs) / quiet_s, 2),
        "submission_refusals": dict(phase.submitter.refusals),
        "documents_resubmitted": len(phase.submitter.retried),
        "documents_above_version_1": sum(1 for v in versions.values() if v > 1),
        "documents_indexed_events_more_than_one": sum(1 for n in indexed.values() if n > 1),
        "chats": chats.summary(),
        "disruptions": phase.disruptions,
    }
    print(f"\ncluster chaos summary: {msgspec.json.encode(summary).decode()}")
    return summary


async def wait_recovered(phase: Phase, client: httpx.AsyncClient, stack: LocalStack, since: float) -> float:
    """Seconds from ``since`` until a chunk is indexed again (the pipeline moves after the loss)."""
    before = await phase.indexed_chunks(client, stack)
    total = len(phase.docs)

    async def moved() -> bool:
        return await phase.indexed_chunks(client, stack) > before or before >= total

    await until(moved, PROGRESS_TIMEOUT_S, f"{phase.name}: nothing indexed after the loss")
    return round(time.monotonic() - since, 1)


# ---------------------------------------------------------------- the tests


@pytest.mark.timeout(1500)
async def test_sigkill_of_the_ingest_stream_leader_loses_and_doubles_nothing(
    cluster: NatsCluster, stack: LocalStack, bus: Bus, client: httpx.AsyncClient
) -> None:
    third = DOCUMENTS // 3

    async def kill_the_leader(phase: Phase) -> None:
        await phase.submitter.allow(third)
        await phase.until_indexed(client, stack, third // 3)
        await phase.until_chat_in_flight()
        leaders = await asyncio.to_thread(cluster.wait_stream_leaders, STREAM_NAMES)
        victim = leaders["GYRE_INGEST"]
        at_kill = {
            "indexed_chunks": await phase.indexed_chunks(client, stack), "chats_in_flight": phase.chats.in_flight,
        }
        killed_at = time.monotonic()
        assert await asyncio.to_thread(cluster.kill, victim, signal.SIGKILL) == -signal.SIGKILL
        # Documents keep coming while the node is down.
        await phase.submitter.allow(third)
        led = [s for s, leader in leaders.items() if leader == victim]
        new_leaders = await asyncio.to_thread(cluster.wait_stream_leaders, led, 60.0)
        leaders_s = round(time.monotonic() - killed_at, 1)
        assert victim not in new_leaders.values()
        recovered_s = await wait_recovered(phase, client, stack, killed_at)
        await phase.until_indexed(client, stack, 2 * third - third // 3)
        down_s = round(time.monotonic() - killed_at, 1)
        restarted_at = time.monotonic()
        await asyncio.to_thread(cluster.start_node, victim)
        await phase.submitter.allow(DOCUMENTS)  # the rest arrive while it catches up
        await asyncio.to_thread(cluster.wait_current, victim, 180.0)
        phase.disruptions.append({
            "node": victim, "signal": "SIGKILL", "led_streams": len(led), "at_kill": at_kill,
            "new_leaders_s": leaders_s, "indexing_again_s": recovered_s, "down_s": down_s,
            "caught_up_s": round(time.monotonic() - restarted_at, 1),
        })

    docs = small_corpus(0, DOCUMENTS)
    summary = await run_phase("sigkill ingest leader", docs, stack, bus, client, kill_the_leader)
    assert summary["disruptions"][0]["at_kill"]["indexed_chunks"] < summary["chunks"]


@pytest.mark.timeout(1500)
async def test_a_rolling_restart_of_every_node_loses_and_doubles_nothing(
    cluster: NatsCluster, stack: LocalStack, bus: Bus, client: httpx.AsyncClient
) -> None:
    batch = DOCUMENTS // (len(cluster.nodes) + 1)

    async def restart_each_node(phase: Phase) -> None:
        await phase.submitter.allow(batch)
        for round_ in range(len(cluster.nodes)):
            node = cluster.nodes[round_].name
            await phase.until_indexed(client, stack, round_ * batch + batch // 3)
            await phase.until_chat_in_flight()
            leaders = await asyncio.to_thread(cluster.wait_stream_leaders, STREAM_NAMES)
            at_stop = {"indexed_chunks": await phase.indexed_chunks(client, stack)}
            stopped_at = time.monotonic()
            assert await asyncio.to_thread(cluster.kill, node, signal.SIGTERM) == 0  # SIGTERM: a clean exit
            await phase.submitter.allow(batch)  # the next batch arrives while the node is away
            led = [s for s, leader in leaders.items() if leader == node]
            await asyncio.to_thread(cluster.wait_stream_leaders, led, 60.0)
            leaders_s = round(time.monotonic() - stopped_at, 1)
            await asyncio.to_thread(cluster.start_node, node)
            await asyncio.to_thread(cluster.wait_current, node, 180.0)
            phase.disruptions.append({
                "node": node, "signal": "SIGTERM", "led_streams": len(led), "at_stop": at_stop,
                "new_leaders_s": leaders_s, "rejoined_and_caught_up_s": round(time.monotonic() - stopped_at, 1),
            })

    docs = small_corpus(DOCUMENTS, DOCUMENTS)
    summary = await run_phase("rolling restart", docs, stack, bus, client, restart_each_node)
    assert len(summary["disruptions"]) == len(cluster.nodes)
    assert all(d["at_stop"]["indexed_chunks"] < summary["chunks"] for d in summary["disruptions"])


def test_no_process_was_refused_anything_by_the_permission_table(cluster: NatsCluster, stack: LocalStack) -> None:
    """Runs last: through both phases every service worked with its own least-privilege user."""
    violations = [
        f"{node.name}: {line}"
        for node in cluster.nodes
        for line in node.log_path.read_text(errors="replace").splitlines()
        if "Permissions Violation" in line
    ]
    assert violations == []
