"""A document ends in the state of the last operation sent, whatever order the workers finish in.

Real nats-server, the gateway's own submit and delete functions, two ingest and two embed replicas
(each its own connection and durable-consumer worker, as separate processes would be) with the real
handlers (ingest reads documents in its real extraction worker processes), and a Qdrant Edge
collection. Two things stand in for the default models, because the order of operations does not
depend on them and they keep this suite free of the model build: a word-level tokenizer built in
code (saved where the extraction workers load it), and an embedder that derives a vector from the
text's hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from gyre_contracts import DocumentSubmitted, new_id, utc_now
from gyre_embed.batching import EmbeddingScheduler
from gyre_embed.handlers import EmbedHandlers
from gyre_embed.index_targets import IndexTarget
from gyre_embed.serving_index import ServingIndex
from gyre_gateway.documents.serving import delete_document, register_and_publish
from gyre_ingest.dedup_index import DedupIndex
from gyre_ingest.extraction_pool import ExtractionPool, WorkerLimits
from gyre_ingest.handlers import DeletionHandler, IngestHandler
from gyre_ingest.pipeline import IngestConfig
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from gyre_runtime.state.tenants import TenantPolicies, TenantPolicy
from gyre_runtime.vectorstore import Bm25Encoder, VectorStore
from gyre_runtime.vectorstore.edge import QdrantEdgeStore
from tests.support.nats_server import NatsServer

DIMENSION = 16
QUIET_TIMEOUT_S = 60.0
# The consumers a submission or deletion passes through; quiet when none has work left.
CONSUMERS = (("GYRE_INGEST", "ingest"), ("GYRE_INDEX", "ingest_index"), ("GYRE_EMBED", "embed"),
             ("GYRE_INDEX", "embed_index"))
WORDS = (
    "amber basalt cedar delta ember fjord granite harbor iris juniper kelp lagoon meadow nickel orchid "
    "pebble quartz raven saffron tundra umber violet willow xenon yarrow zephyr anchor beacon canyon "
    "dune estuary falcon glacier heron inlet jasper kestrel lichen marsh nectar"
).split()


def word_tokenizer() -> Tokenizer:
    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


def hashed_vectors(texts: list[str]) -> list[list[float]]:
    vectors = []
    for text in texts:
        digest = hashlib.sha256(text.encode()).digest()
        vector = [b / 255 + 0.01 for b in digest[:DIMENSION]]
        norm = sum(x * x for x in vector) ** 0.5
        vectors.append([x / norm for x in vector])
    return vectors


def text_of(document_id: str, edition: int, words: int = 14) -> str:
    """A distinct text per document and edition: far from every other one for the duplicate checks."""
    rng = random.Random(f"{document_id}/{edition}")
    body = " ".join(rng.choice(WORDS) for _ in range(words))
    return f"Document {document_id} edition {edition} marker{edition}x{document_id}: {body}."


@dataclass
class Stack:
    """The gateway, two ingest and two embed replicas, one vector collection, the test's own connection."""

    settings: Settings
    bus: Bus
    store: VectorStore
    gateway: Service
    replicas: list[Service] = field(default_factory=list)
    schedulers: list[EmbeddingScheduler] = field(default_factory=list)
    pools: list[ExtractionPool] = field(default_factory=list)

    async def registry(self) -> DocumentRegistry:
        return DocumentRegistry(await self.bus.kv("gyre_documents"))

    async def submit(self, tenant: str, document_id: str, text: str) -> None:
        submission = DocumentSubmitted(
            tenant=tenant, document_id=document_id, text=text, content_type="text/plain", source="api",
            submission_id=new_id(), submitted_at=utc_now(),
        )
        await register_and_publish(self.gateway, submission, traceparent=None)

    async def delete(self, tenant: str, document_id: str) -> None:
        await delete_document(self.gateway, tenant, document_id)

    async def start_workers(self, tmp_path: Path, *, ingest: int = 2, embed: int = 2) -> None:
        scheduler = EmbeddingScheduler(hashed_vectors, max_batch=16, max_wait_s=0.002)
        self.schedulers.append(scheduler)
        target = IndexTarget(
            collection="chunks", model="hashed", embedder=_HashedModel(), scheduler=scheduler, store=self.store
        )
        serving = ServingIndex(active=target)
        config = IngestConfig.from_settings(self.settings)
        tokenizer_file = tmp_path / "word-tokenizer.json"
        word_tokenizer().save(str(tokenizer_file))
        for _ in range(ingest):
            service = Service("ingest", self.settings)
            pool = ExtractionPool(tokenizer_file, config, WorkerLimits(timeout_s=60.0), size=2)
            await pool.start()
            self.pools.append(pool)

            async def wire_ingest(svc: Service, pool: ExtractionPool = pool) -> None:
                dedup = DedupIndex(await svc.bus.kv("gyre_dedup"))
                registry = DocumentRegistry(await svc.bus.kv("gyre_documents"))
                policies = TenantPolicies(await svc.bus.kv("gyre_tenants"), TenantPolicy())
                svc.consume("ingest", IngestHandler(pool, registry, dedup, policies, svc.publisher))
                svc.consume("ingest_index", DeletionHandler(dedup, registry, svc.bus))

            service.on_start(wire_ingest)
            await service.start()
            self.replicas.append(service)
        for _ in range(embed):
            service = Service("embed", self.settings)

            async def wire_embed(svc: Service) -> None:
                registry = DocumentRegistry(await svc.bus.kv("gyre_documents"))
                handlers = EmbedHandlers(serving=serving, sparse=Bm25Encoder(), registry=registry,
                                         publisher=svc.publisher)
                svc.consume("embed", handlers.index)
                svc.consume("embed_index", handlers.delete)

            service.on_start(wire_embed)
            await service.start()
            self.replicas.append(service)

    async def wait_until_quiet(self) -> None:
        """Every consumer has every message delivered and acknowledged, twice in a row."""

        async def quiet() -> bool:
            for stream, durable in CONSUMERS:
                info = await self.bus.js.consumer_info(self.bus.stream_name(stream), durable)
                if info.num_pending or info.num_ack_pending:
                    return False
            return True

        async def settle() -> None:
            calm = 0
            while calm < 2:
                calm = calm + 1 if await quiet() else 0
                await asyncio.sleep(0.05)

        await asyncio.wait_for(settle(), QUIET_TIMEOUT_S)

    async def stored_texts(self, stream: str) -> list[str]:
        """Every message body still in a stream."""
        name = self.bus.stream_name(stream)
        info = await self.bus.js.stream_info(name)
        bodies: list[str] = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                message = await self.bus.js.get_msg(name, seq)
            except Exception:  # a deleted sequence
                continue
            body = (message.data or b"").decode("utf-8", "replace")
            bodies.append(body)
        return bodies


class _HashedModel:
    version = "hashed:1"
    dimension = DIMENSION


@asynccontextmanager
async def running_stack(nats_url: str, tmp_path: Path) -> AsyncIterator[Stack]:
    settings = load_settings({}, nats_url=nats_url, data_dir=str(tmp_path / "data"))
    gateway = Service("gateway", settings)
    await gateway.start()
    bus = await connect(settings, name="gyre-test")
    store = QdrantEdgeStore.open_collection(tmp_path / "qdrant", "chunks", DIMENSION)
    stack = Stack(settings=settings, bus=bus, store=store, gateway=gateway)
    try:
        yield stack
    finally:
        for replica in stack.replicas:
            await replica.stop()
        for scheduler in stack.schedulers:
            await scheduler.stop()
        for pool in stack.pools:
            await pool.close()
        await gateway.stop()
        await bus.close()
        await store.close()


async def searchable(stack: Stack, tenant: str, document_id: str) -> tuple[int, list[tuple[int, str]]]:
    """(points of the document in the collection, (version, text) of what a search for it returns)."""
    count = await stack.store.count(tenant, document_id)
    hits = await stack.store.search(
        tenant, dense=hashed_vectors([document_id])[0], sparse=None, top_k=500, mode="dense",
        metadata_filter=None,
    )
    found = [(int(h.payload["version"]), str(h.payload["text"])) for h in hits
             if h.payload["document_id"] == document_id]
    return count, found


# ---------------------------------------------------------------------------- the two reproductions


async def test_documents_deleted_while_their_submissions_wait_never_come_back(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Issue: DELETE while the submission was still queued; 4 of 10 came back searchable."""
    async with running_stack(nats_server.url, tmp_path) as stack:
        ids = [f"queued-{i}" for i in range(10)]
        for document_id in ids:
            await stack.submit("acme", document_id, text_of(document_id, 1))
        for document_id in ids:
            await stack.delete("acme", document_id)
        await stack.submit("acme", "kept", text_of("kept", 1))
        await stack.start_workers(tmp_path)  # the workers start with everything still queued
        await stack.wait_until_quiet()

        registry = await stack.registry()
        for document_id in ids:
            record = await registry.get("acme", document_id)
            assert record is not None and record.status == "deleted", (document_id, record)
            assert await searchable(stack, "acme", document_id) == (0, []), document_id
        assert await searchable(stack, "acme", "kept") == (1, [(1, text_of("kept", 1))])

        # Their raw submissions and chunks are gone from the bus too; the kept document's are not.
        stored = "\n".join(await stack.stored_texts("GYRE_INGEST") + await stack.stored_texts("GYRE_EMBED"))
        for document_id in ids:
            assert f"marker1x{document_id}" not in stored, document_id
        assert "marker1xkept" in stored


async def test_a_short_correction_sent_after_a_long_version_wins(nats_server: NatsServer, tmp_path: Path) -> None:
    """Issue: a long version then a short correction ended as version 2 holding the OLD text."""
    async with running_stack(nats_server.url, tmp_path) as stack:
        long_text = "\n\n".join(text_of("manual", 1, words=60) + f" part {i}" for i in range(400))
        correction = text_of("manual", 2)
        await stack.submit("acme", "manual", long_text)
        await stack.submit("acme", "manual", correction)
        await stack.start_workers(tmp_path)
        await stack.wait_until_quiet()

        record = await (await stack.registry()).get("acme", "manual")
        assert record is not None
        assert (record.status, record.version, record.chunks) == ("indexed", 2, 1)
        assert await searchable(stack, "acme", "manual") == (1, [(2, correction)])


async def test_indexed_documents_deleted_leave_no_content_on_the_bus(nats_server: NatsServer, tmp_path: Path) -> None:
    """A document indexed, then deleted: its raw submission and its chunks are purged from the streams."""
    async with running_stack(nats_server.url, tmp_path) as stack:
        await stack.start_workers(tmp_path, ingest=1, embed=1)
        await stack.submit("acme", "contract", text_of("contract", 1))
        await stack.submit("acme", "other", text_of("other", 1))
        await stack.wait_until_quiet()
        assert "marker1xcontract" in "\n".join(await stack.stored_texts("GYRE_EMBED"))

        await stack.delete("acme", "contract")
        await stack.wait_until_quiet()
        stored = "\n".join(await stack.stored_texts("GYRE_INGEST") + await stack.stored_texts("GYRE_EMBED"))
        assert "marker1xcontract" not in stored
        assert "marker1xother" in stored
        assert await searchable(stack, "acme", "contract") == (0, [])


async def test_a_submission_from_another_system_sent_before_a_deletion_stays_deleted(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Events published without a version are ordered by where the stream stored them."""
    async with running_stack(nats_server.url, tmp_path) as stack:
        await stack.submit("acme", "crm-1", text_of("crm-1", 1))
        external = DocumentSubmitted(tenant="acme", document_id="crm-1", text=text_of("crm-1", 2), source="crm")
        await stack.gateway.publisher.publish(external, event_id=new_id())
        await stack.delete("acme", "crm-1")
        after = DocumentSubmitted(tenant="acme", document_id="crm-2", text=text_of("crm-2", 1), source="crm")
        await stack.gateway.publisher.publish(after, event_id=new_id())
        await stack.start_workers(tmp_path)
        await stack.wait_until_quiet()

        registry = await stack.registry()
        deleted = await registry.get("acme", "crm-1")
        assert deleted is not None and deleted.status == "deleted"
        assert await searchable(stack, "acme", "crm-1") == (0, [])
        created = await registry.get("acme", "crm-2")
        assert created is not None and (created.status, created.version) == ("indexed", 1)
        assert "marker2xcrm-1" not in "\n".join(await stack.stored_texts("GYRE_INGEST"))


# ---------------------------------------------------------------------------- random interleavings


DOCUMENT_IDS = ("alpha", "beta", "gamma")
# ("submit" | "delete", document id, paragraphs): long submissions take ingest and embed longer than
# short ones, so workers finish out of the order the operations were sent in.
Operation = tuple[str, str, int]

operations = st.lists(
    st.tuples(st.sampled_from(("submit", "submit", "delete")), st.sampled_from(DOCUMENT_IDS), st.sampled_from((1, 40))),
    min_size=1, max_size=9,
)


def edition_text(tenant: str, document_id: str, edition: int, paragraphs: int) -> str:
    """Every paragraph carries the edition's marker, so every chunk of it says which edition it is."""
    return "\n\n".join(text_of(f"{tenant}-{document_id}", edition) + f" Part {i}." for i in range(paragraphs))


def marker(tenant: str, document_id: str, edition: int) -> str:
    return f"marker{edition}x{tenant}-{document_id}:"


@dataclass
class Expected:
    submissions: int = 0
    last: str = ""  # "submit" or "delete"


def expected_states(ops: list[Operation]) -> dict[str, Expected]:
    states: dict[str, Expected] = {}
    for op, document_id, _ in ops:
        state = states.setdefault(document_id, Expected())
        if op == "submit":
            state.submissions += 1
            state.last = "submit"
        elif state.submissions:  # deleting what was never submitted is a 404, nothing changes
            state.last = "delete"
    return states


async def send(stack: Stack, ops: list[Operation], tenant: str) -> None:
    submissions: dict[str, int] = {}
    for op, document_id, paragraphs in ops:
        if op == "submit":
            submissions[document_id] = submissions.get(document_id, 0) + 1
            text = edition_text(tenant, document_id, submissions[document_id], paragraphs)
            await stack.submit(tenant, document_id, text)
        elif submissions.get(document_id):
            await stack.delete(tenant, document_id)


async def check(stack: Stack, ops: list[Operation], tenant: str) -> None:
    registry = await stack.registry()
    for document_id, expected in expected_states(ops).items():
        if not expected.submissions:
            continue
        record: DocumentRecord | None = await registry.get(tenant, document_id)
        assert record is not None, document_id
        count, hits = await searchable(stack, tenant, document_id)
        if expected.last == "delete":
            assert record.status == "deleted", (ops, document_id, record)
            assert (count, hits) == (0, []), (ops, document_id, hits)
        else:
            assert (record.status, record.version) == ("indexed", expected.submissions), (ops, document_id, record)
            # Exactly the last version's chunks are in the collection, and nothing else of the document.
            assert count == record.chunks == len(hits), (ops, document_id, count, record.chunks, len(hits))
            wanted = marker(tenant, document_id, expected.submissions)
            assert all(version == expected.submissions and wanted in text for version, text in hits), (ops, hits)


@pytest.fixture
def event_loop_for_examples() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_random_submissions_and_deletions_end_in_the_state_of_the_last_one_sent(
    nats_server: NatsServer, tmp_path: Path, event_loop_for_examples: asyncio.AbstractEventLoop
) -> None:
    """Hypothesis sends random interleavings (each example its own tenant) while the workers run."""
    loop = event_loop_for_examples
    stack_context = running_stack(nats_server.url, tmp_path)
    stack = loop.run_until_complete(stack_context.__aenter__())
    try:
        loop.run_until_complete(stack.start_workers(tmp_path))
        examples = iter(range(10_000))

        @hypothesis_settings(max_examples=20, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture])
        @given(ops=operations)
        def example(ops: list[Operation]) -> None:
            tenant = f"t{next(examples)}"

            async def run() -> None:
                await send(stack, ops, tenant)
                await stack.wait_until_quiet()
                await check(stack, ops, tenant)

            loop.run_until_complete(run())

        example()
    finally:
        loop.run_until_complete(stack_context.__aexit__(None, None, None))
