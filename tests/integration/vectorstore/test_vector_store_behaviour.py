"""What every VectorStore adapter must do, run against each: Qdrant Edge, and qdrant-client in local mode.

Vectors are small and built by hand so that the dense and the keyword rankings disagree where a
test needs them to; keyword vectors come from the same BM25 encoder the embed service uses.
"""

from __future__ import annotations

import asyncio
import math
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import qdrant_client
import qdrant_edge as q
from qdrant_client import models

from gyre_runtime.config import Settings, load_settings
from gyre_runtime.vectorstore import (
    DEFAULT_COLLECTION,
    Bm25Encoder,
    IncompatibleCollection,
    InvalidSearch,
    SearchHit,
    SearchMode,
    VectorPoint,
    VectorStore,
    drop_vector_collection,
    open_vector_store,
    point_id,
)
from gyre_runtime.vectorstore.edge import QdrantEdgeStore
from gyre_runtime.vectorstore.qdrant_server import QdrantServerStore

DIM = 8
TENANT = "acme"
MODES: tuple[SearchMode, ...] = ("dense", "sparse", "hybrid")
ENCODER = Bm25Encoder(avg_len=6)


def axis(i: int, weight: float = 1.0) -> list[float]:
    return [weight if j == i else 0.0 for j in range(DIM)]


def mix(*parts: list[float]) -> list[float]:
    return [sum(values) for values in zip(*parts, strict=True)]


@dataclass
class Backend:
    kind: str
    root: Path

    @property
    def settings(self) -> Settings:
        url = {"edge": "", "qdrant-memory": ":memory:", "qdrant-path": str(self.root / "qdrant-local")}[self.kind]
        return load_settings({}, data_dir=str(self.root / "data"), qdrant_url=url)

    async def open(self, dimension: int = DIM, collection: str = "chunks") -> VectorStore:
        return await open_vector_store(self.settings, collection, dimension)

    def legacy_dense_only_collection(self, collection: str = "chunks") -> None:
        """A collection as stores made it before hybrid retrieval: dense vector only, one point."""
        payload = {"tenant": TENANT, "document_id": "old", "version": 1, "text": "kafka from long ago"}
        pid = point_id(TENANT, "old", 1, 0)
        if self.kind == "edge":
            shard = q.EdgeShard.create(
                str(self.root / "data" / "qdrant" / collection),
                q.EdgeConfig(vectors={"dense": q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine)}),
            )
            shard.update(q.UpdateOperation.upsert_points([q.Point(pid, {"dense": axis(0)}, payload)]))
            shard.flush()
            shard.close()
            return
        client = qdrant_client.QdrantClient(path=str(self.root / "qdrant-local"))
        client.create_collection(
            collection, vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)}
        )
        client.upsert(collection, [models.PointStruct(id=pid, vector={"dense": axis(0)}, payload=payload)])
        client.close()


@pytest.fixture(params=["edge", "qdrant-memory", "qdrant-path"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest.fixture(params=["edge", "qdrant-path"])
def persistent_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return Backend(request.param, tmp_path)


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[VectorStore]:
    opened = await backend.open()
    yield opened
    await opened.close()


def points(
    tenant: str, document_id: str, version: int, chunks: list[tuple[str, list[float]]], metadata: dict[str, Any]
) -> list[VectorPoint]:
    return [
        VectorPoint(
            id=point_id(tenant, document_id, version, index),
            vector=vector,
            sparse=ENCODER.encode_document(text),
            payload={"chunk_index": index, "text": text, "metadata": metadata},
        )
        for index, (text, vector) in enumerate(chunks)
    ]


async def index(
    store: VectorStore,
    document_id: str,
    chunks: list[tuple[str, list[float]]],
    *,
    tenant: str = TENANT,
    version: int = 1,
    metadata: dict[str, Any] | None = None,
) -> None:
    new_points = points(tenant, document_id, version, chunks, metadata or {})
    await store.replace_document(tenant, document_id, version, new_points)


async def find(
    store: VectorStore,
    text: str,
    vector: list[float],
    mode: SearchMode,
    *,
    tenant: str = TENANT,
    top_k: int = 5,
    metadata_filter: dict[str, Any] | None = None,
) -> list[SearchHit]:
    return await store.search(
        tenant, dense=vector, sparse=ENCODER.encode_query(text), top_k=top_k, mode=mode,
        metadata_filter=metadata_filter,
    )


def documents(hits: list[SearchHit]) -> list[str]:
    return [str(h.payload["document_id"]) for h in hits]


async def test_dense_search_ranks_the_nearest_chunk_first(store: VectorStore) -> None:
    await index(store, "north", [("pointing north", axis(0))])
    await index(store, "east", [("pointing east", axis(1))])
    await index(store, "north-east", [("pointing north east", mix(axis(0, 0.9), axis(1, 0.1)))])
    hits = await find(store, "direction", axis(0), "dense")
    assert documents(hits) == ["north", "north-east", "east"]
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[0].id == point_id(TENANT, "north", 1, 0)


async def test_sparse_search_finds_a_rare_keyword_that_dense_search_misses(store: VectorStore) -> None:
    await index(store, "guide", [("how to configure the server for production use", axis(0))])
    await index(store, "deploy", [("notes about deploying on many machines", mix(axis(0, 0.8), axis(1, 0.2)))])
    await index(store, "errors", [("error ZX81 means the shard lock is held", axis(3))])
    # The query's meaning sits near the guide; its one rare word only the error page contains.
    dense = await find(store, "what does ZX81 mean", axis(0), "dense", top_k=2)
    sparse = await find(store, "what does ZX81 mean", axis(0), "sparse", top_k=2)
    assert documents(dense) == ["guide", "deploy"]
    assert documents(sparse) == ["errors"]


async def test_hybrid_fuses_both_rankings_by_reciprocal_rank(store: VectorStore) -> None:
    await index(store, "both", [("kafka consumer groups rebalance", axis(0))])
    await index(store, "dense-only", [("message brokers spread partitions", mix(axis(0, 0.9), axis(1, 0.1)))])
    await index(store, "sparse-only", [("kafka release notes", mix(axis(0, 0.1), axis(5)))])
    await index(store, "neither", [("weather forecast sunny", axis(6))])
    hits = await find(store, "kafka consumer", axis(0), "hybrid")
    # Dense ranks: both 0, dense-only 1, sparse-only 2, neither 3; sparse ranks: both 0, sparse-only 1.
    assert documents(hits) == ["both", "sparse-only", "dense-only", "neither"]
    expected = [2 / 60, 1 / 62 + 1 / 61, 1 / 61, 1 / 63]
    assert [h.score for h in hits] == pytest.approx(expected, rel=1e-4)


async def test_hybrid_keeps_the_top_k_of_the_fused_ranking(store: VectorStore) -> None:
    for i in range(8):
        # Both rankings agree: doc0 is nearest and says "kafka" most often, doc7 the reverse.
        await index(store, f"doc{i}", [("kafka " * (8 - i) + "topic", mix(axis(0, 1.0 - i / 10), axis(1, i / 10)))])
    hits = await find(store, "kafka", axis(0), "hybrid", top_k=3)
    assert documents(hits) == ["doc0", "doc1", "doc2"]
    assert [h.score for h in hits] == pytest.approx([2 / 60, 2 / 61, 2 / 62], rel=1e-4)


@pytest.mark.parametrize("mode", MODES)
async def test_a_tenant_never_sees_another_tenants_chunks(store: VectorStore, mode: SearchMode) -> None:
    await index(store, "shared-name", [("kafka partitions explained", axis(1))], tenant="acme")
    await index(store, "shared-name", [("kafka partitions explained", axis(1))], tenant="globex")
    await index(store, "secret", [("kafka secret roadmap kafka", axis(0))], tenant="globex")
    hits = await find(store, "kafka roadmap", axis(0), mode, tenant="acme")
    assert documents(hits) == ["shared-name"]
    assert {h.payload["tenant"] for h in hits} == {"acme"}
    assert await find(store, "kafka", axis(0), mode, tenant="initech") == []


async def test_deleting_a_document_leaves_other_documents_and_tenants(store: VectorStore) -> None:
    await index(store, "a", [("alpha one", axis(0)), ("alpha two", axis(1))])
    await index(store, "b", [("beta", axis(2))])
    await index(store, "a", [("alpha one", axis(0))], tenant="globex")
    await store.delete_document(TENANT, "a")
    assert await store.count(TENANT, "a") == 0
    assert await store.count(TENANT) == 1
    assert await store.count("globex", "a") == 1
    assert documents(await find(store, "alpha", axis(0), "hybrid")) == ["b"]
    await store.delete_document(TENANT, "never-indexed")  # deleting nothing is not an error


async def test_count_by_tenant_document_and_overall(store: VectorStore) -> None:
    await index(store, "a", [("one", axis(0)), ("two", axis(1)), ("three", axis(2))])
    await index(store, "b", [("four", axis(3))])
    await index(store, "a", [("five", axis(4))], tenant="globex")
    assert await store.count(TENANT) == 4
    assert await store.count(TENANT, "a") == 3
    assert await store.count("globex") == 1
    assert await store.count_all() == 5


async def test_sparse_idf_is_computed_over_the_tenants_own_chunks(store: VectorStore) -> None:
    text = "kafka streams"
    await index(store, "rare", [(text, axis(0))])
    for i in range(3):
        await index(store, f"other{i}", [(f"unrelated topic {i}", axis(1))])
    for i in range(20):  # another tenant full of the word must not make it common for acme
        await index(store, f"noise{i}", [("kafka kafka kafka", axis(2))], tenant="globex")
    hits = await find(store, "kafka", axis(0), "sparse")
    assert documents(hits) == ["rare"]
    weight = dict(zip(*(lambda v: (v.indices, v.values))(ENCODER.encode_document(text)), strict=True))
    kafka_weight = weight[ENCODER.encode_query("kafka").indices[0]]
    chunks, with_term = 4, 1  # acme's own corpus
    idf = math.log((chunks - with_term + 0.5) / (with_term + 0.5) + 1)
    assert hits[0].score == pytest.approx(kafka_weight * idf, rel=1e-3)


@pytest.mark.parametrize("mode", MODES)
async def test_metadata_filters_match_equal_values_and_any_of_a_list(store: VectorStore, mode: SearchMode) -> None:
    await index(store, "en", [("annual report", axis(0))], metadata={"lang": "en", "year": 2023})
    await index(store, "fr", [("rapport annual report", axis(1))], metadata={"lang": "fr", "year": 2024})
    await index(store, "de", [("jahresbericht report", axis(2))], metadata={"lang": "de", "year": 2024})

    async def matching(metadata_filter: dict[str, Any]) -> set[str]:
        return set(documents(await find(store, "report", axis(0), mode, metadata_filter=metadata_filter)))

    assert await matching({"lang": "fr"}) == {"fr"}
    assert await matching({"lang": ["en", "de"]}) == {"en", "de"}
    assert await matching({"year": 2024}) == {"fr", "de"}
    assert await matching({"year": [2022, 2023]}) == {"en"}
    assert await matching({"lang": ["fr", "de"], "year": 2024}) == {"fr", "de"}
    assert await matching({"lang": "fr", "year": 2023}) == set()
    assert await matching({"owner": "nobody"}) == set()
    assert await matching({}) == {"en", "fr", "de"}


async def test_metadata_keys_that_are_not_plain_names_can_be_filtered_on(store: VectorStore) -> None:
    # Found by fuzzing the gateway: such a key made an invalid JSON path in the store, answered 502.
    odd = {"Author Name": "ada", "dc:creator": "ada", "$ref": "x", "a/b": "y", "é": "z"}
    await index(store, "odd", [("annual report", axis(0))], metadata=odd)
    await index(store, "plain", [("annual report", axis(1))], metadata={"Author Name": "bob"})
    for key, value in odd.items():
        hits = await find(store, "report", axis(0), "dense", metadata_filter={key: value})
        assert set(documents(hits)) == {"odd"}, key
    with pytest.raises(InvalidSearch, match="double quote"):
        await find(store, "report", axis(0), "dense", metadata_filter={'say "hi"': "x"})


async def test_unanswerable_searches_are_refused_with_a_reason(store: VectorStore) -> None:
    sparse = ENCODER.encode_query("kafka")
    with pytest.raises(InvalidSearch, match="dense query vector"):
        await store.search(TENANT, dense=None, sparse=sparse, top_k=5, mode="hybrid")
    with pytest.raises(InvalidSearch, match="sparse query vector"):
        await store.search(TENANT, dense=axis(0), sparse=None, top_k=5, mode="sparse")
    with pytest.raises(InvalidSearch, match="dimensions"):
        await store.search(TENANT, dense=[1.0, 0.0], sparse=None, top_k=5, mode="dense")
    with pytest.raises(InvalidSearch, match="top_k"):
        await store.search(TENANT, dense=axis(0), sparse=None, top_k=0, mode="dense")
    with pytest.raises(InvalidSearch, match="mode"):
        await store.search(TENANT, dense=axis(0), sparse=None, top_k=5, mode="fuzzy")  # type: ignore[arg-type]
    bad_filters: list[dict[str, Any]] = [
        {"lang": []}, {"lang": None}, {"lang": [True]}, {"public": True}, {"score": 0.5}, {"lang": ["en", 1]}
    ]
    for bad in bad_filters:
        with pytest.raises(InvalidSearch, match="filter"):
            await store.search(TENANT, dense=axis(0), sparse=None, top_k=5, mode="dense", metadata_filter=bad)


async def test_a_query_of_stopwords_only_finds_nothing_by_keyword_and_ranks_by_meaning(store: VectorStore) -> None:
    await index(store, "near", [("kafka near", axis(0))])
    await index(store, "far", [("kafka far", axis(4))])
    assert await find(store, "the of and", axis(0), "sparse") == []
    assert documents(await find(store, "the of and", axis(0), "hybrid")) == ["near", "far"]


async def test_the_store_sets_the_fields_it_filters_on(store: VectorStore) -> None:
    claimed = VectorPoint(
        id=point_id(TENANT, "doc", 3, 0), vector=axis(0), sparse=ENCODER.encode_document("kafka"),
        payload={"tenant": "globex", "document_id": "other", "version": 99, "text": "kafka"},
    )
    await store.replace_document(TENANT, "doc", 3, [claimed])
    (hit,) = await find(store, "kafka", axis(0), "hybrid")
    assert (hit.payload["tenant"], hit.payload["document_id"], hit.payload["version"]) == (TENANT, "doc", 3)
    assert await store.count("globex") == 0


async def test_replacing_a_document_keeps_only_the_new_version(store: VectorStore) -> None:
    await index(store, "doc", [("kafka one", axis(0)), ("kafka two", axis(1)), ("kafka three", axis(2))], version=1)
    await index(store, "doc", [("kafka uno", axis(0)), ("kafka dos", axis(1))], version=2)
    assert await store.count(TENANT, "doc") == 2
    for mode in MODES:
        hits = await find(store, "kafka", axis(0), mode, top_k=10)
        assert {h.payload["version"] for h in hits} == {2}, mode
        assert len(hits) == 2
    # Redelivery of the same version overwrites instead of duplicating.
    await index(store, "doc", [("kafka uno", axis(0)), ("kafka dos", axis(1))], version=2)
    assert await store.count(TENANT, "doc") == 2


async def test_searches_during_repeated_replacement_see_exactly_one_version(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    versions = 30
    if isinstance(store, QdrantServerStore):
        # Against a server other tasks run while a request is in flight, so between a replacement's
        # upsert and its delete; local mode never yields there: make its upsert yield as a request would.
        upsert = store.client.upsert

        async def upsert_then_yield(*args: Any, **kwargs: Any) -> Any:
            result = await upsert(*args, **kwargs)
            await asyncio.sleep(0)
            return result

        monkeypatch.setattr(store.client, "upsert", upsert_then_yield)
    done = asyncio.Event()
    seen: list[set[int]] = []

    async def replace_repeatedly() -> None:
        for version in range(1, versions + 1):
            chunks = [(f"kafka guide part {i} edition {version}", axis(i % DIM)) for i in range(3 + version % 3)]
            await index(store, "guide", chunks, version=version)
            await asyncio.sleep(0)  # let the searcher in between replacements even when the store never yields
        done.set()

    async def search_until_done() -> None:
        await index(store, "guide", [("kafka guide part 0 edition 0", axis(0))], version=0)
        writer = asyncio.create_task(replace_repeatedly())
        while not done.is_set():
            for mode in MODES:
                hits = await find(store, "kafka guide", axis(0), mode, top_k=10)
                seen.append({int(h.payload["version"]) for h in hits})
            await asyncio.sleep(0)
        await writer

    await search_until_done()
    assert len(seen) >= 10, "the searcher must have run while replacements were going on"
    assert all(len(versions_seen) == 1 for versions_seen in seen), seen
    assert await store.count(TENANT, "guide") == 3 + versions % 3


async def _upsert_without_dropping_old_versions(store: VectorStore, new: list[VectorPoint], version: int) -> None:
    """What a crash between a replacement's upsert and its delete leaves behind."""
    def payload(p: VectorPoint) -> dict[str, Any]:
        return {**p.payload, "tenant": TENANT, "document_id": "doc", "version": version}

    if isinstance(store, QdrantEdgeStore):
        store.shard.update(q.UpdateOperation.upsert_points([
            q.Point(p.id, {"dense": p.vector, "bm25": q.SparseVector(p.sparse.indices, p.sparse.values)}, payload(p))
            for p in new if p.sparse is not None
        ]))
    else:
        assert isinstance(store, QdrantServerStore)
        await store.client.upsert(store.collection, [
            models.PointStruct(id=p.id, vector={"dense": p.vector, "bm25": models.SparseVector(
                indices=p.sparse.indices, values=p.sparse.values)}, payload=payload(p))
            for p in new if p.sparse is not None
        ])


async def test_hits_of_an_older_version_left_beside_a_newer_one_are_not_returned(store: VectorStore) -> None:
    await index(store, "doc", [("kafka one", axis(0)), ("kafka two", axis(1)), ("kafka three", axis(2))], version=1)
    await _upsert_without_dropping_old_versions(
        store, points(TENANT, "doc", 2, [("kafka uno", axis(0)), ("kafka dos", axis(3))], {}), version=2
    )
    assert await store.count(TENANT, "doc") == 5
    for mode in MODES:
        hits = await find(store, "kafka", axis(0), mode, top_k=10)
        assert {h.payload["version"] for h in hits} == {2}, mode
    await index(store, "doc", [("kafka uno", axis(0)), ("kafka dos", axis(3))], version=2)  # the redelivery
    assert await store.count(TENANT, "doc") == 2


async def test_reopening_a_store_keeps_its_points(persistent_backend: Backend) -> None:
    first = await persistent_backend.open()
    await index(first, "doc", [("kafka kafka one", axis(0)), ("kafka two", axis(1))])
    before = await find(first, "kafka", axis(0), "hybrid")
    await first.close()
    again = await persistent_backend.open()
    try:
        assert await again.count(TENANT, "doc") == 2
        after = await find(again, "kafka", axis(0), "hybrid")
        assert [h.id for h in after] == [h.id for h in before]
        assert [h.score for h in after] == pytest.approx([h.score for h in before])
    finally:
        await again.close()


async def test_opening_a_collection_with_another_dimension_is_refused(persistent_backend: Backend) -> None:
    await (await persistent_backend.open(dimension=DIM)).close()
    with pytest.raises(IncompatibleCollection, match="gyre reindex"):
        await persistent_backend.open(dimension=2 * DIM)
    await (await persistent_backend.open(dimension=DIM)).close()  # refusing changed nothing


async def test_a_collection_from_before_hybrid_retrieval_gains_the_sparse_vector(
    persistent_backend: Backend,
) -> None:
    persistent_backend.legacy_dense_only_collection()
    store = await persistent_backend.open()
    try:
        assert await store.count(TENANT) == 1
        assert documents(await find(store, "kafka", axis(0), "dense")) == ["old"]
        # Its old points carry no keyword vector until re-indexed; new ones do.
        assert await find(store, "kafka", axis(0), "sparse") == []
        await index(store, "new", [("kafka today", axis(1))])
        assert documents(await find(store, "kafka", axis(0), "sparse")) == ["new"]
        assert documents(await find(store, "kafka", axis(0), "hybrid")) == ["new", "old"]
    finally:
        await store.close()


async def test_edge_collections_are_separate_shards_side_by_side(tmp_path: Path) -> None:
    backend = Backend("edge", tmp_path)
    live, rebuilt = await backend.open(collection="live"), await backend.open(collection="rebuilt")
    try:
        await index(live, "doc", [("kafka", axis(0))])
        assert (await live.count_all(), await rebuilt.count_all()) == (1, 0)
        assert sorted(p.name for p in (tmp_path / "data" / "qdrant").iterdir()) == ["live", "rebuilt"]
    finally:
        await live.close()
        await rebuilt.close()
    with pytest.raises(ValueError, match="collection names"):
        await backend.open(collection="../escape")


# ---------------------------------------------------------------------------- life cycle


async def test_a_dropped_collection_is_gone_with_its_points(persistent_backend: Backend) -> None:
    store = await persistent_backend.open()
    await index(store, "doc", [("kafka", axis(0))])
    await store.drop()
    # Gone, not emptied: the name can hold a collection of another dimension now.
    again = await persistent_backend.open(dimension=2 * DIM)
    try:
        assert await again.count_all() == 0
    finally:
        await again.close()


async def test_an_edge_collection_no_store_has_open_is_dropped_by_name(tmp_path: Path) -> None:
    backend = Backend("edge", tmp_path)
    left = await backend.open(collection="leftover")
    await index(left, "doc", [("kafka", axis(0))])
    await left.close()
    await drop_vector_collection(backend.settings, "leftover")
    await drop_vector_collection(backend.settings, "never-made")  # nothing to drop is no error
    assert not (tmp_path / "data" / "qdrant" / "leftover").exists()
    with pytest.raises(ValueError, match="collection names"):
        await drop_vector_collection(backend.settings, "../data")


async def test_in_local_mode_a_collection_is_dropped_only_through_its_open_store(tmp_path: Path) -> None:
    """qdrant-client's local mode lets one client hold a folder: the serving store's. A leftover stays."""
    backend = Backend("qdrant-path", tmp_path)
    await (await backend.open(collection="leftover")).close()
    serving = await backend.open(collection="serving")
    try:
        await drop_vector_collection(backend.settings, "leftover")
        assert await serving.client.collection_exists("leftover")  # type: ignore[attr-defined]
    finally:
        await serving.close()


def single_collection_layout_shard(base: Path) -> None:
    """A shard as the store laid it out before collections: in the base folder itself."""
    shard = q.EdgeShard.create(
        str(base), q.EdgeConfig(vectors={"dense": q.EdgeVectorParams(size=DIM, distance=q.Distance.Cosine)})
    )
    payload = {"tenant": TENANT, "document_id": "old", "version": 1}
    shard.update(q.UpdateOperation.upsert_points([q.Point(point_id(TENANT, "old", 1, 0), {"dense": axis(0)}, payload)]))
    shard.flush()
    shard.close()


async def test_an_edge_shard_of_the_single_collection_layout_becomes_the_default_collection(tmp_path: Path) -> None:
    base = tmp_path / "data" / "qdrant"
    single_collection_layout_shard(base)
    # Opening any collection (here a re-index target) first moves the old shard to the default one.
    rebuilt = await Backend("edge", tmp_path).open(collection="rebuilt")
    await rebuilt.close()
    assert sorted(p.name for p in base.iterdir()) == [DEFAULT_COLLECTION, "rebuilt"]
    live = await Backend("edge", tmp_path).open(collection=DEFAULT_COLLECTION)
    try:
        assert await live.count(TENANT, "old") == 1
    finally:
        await live.close()


KILLED_WRITER = """
import asyncio, os, signal, sys
from gyre_runtime.config import load_settings
from gyre_runtime.vectorstore import VectorPoint, open_vector_store, point_id

async def main():
    root, url = sys.argv[1], sys.argv[2]
    store = await open_vector_store(load_settings({}, data_dir=root + "/data", qdrant_url=url), "chunks", 8)
    for d in range(20):
        points = [VectorPoint(id=point_id("acme", f"d{d}", 1, i), vector=[1.0] * 8, payload={}) for i in range(3)]
        await store.replace_document("acme", f"d{d}", 1, points)
    newer = VectorPoint(id=point_id("acme", "d0", 2, 0), vector=[1.0] * 8, payload={})
    await store.replace_document("acme", "d0", 2, [newer])
    await store.delete_document("acme", "d1")
    os.kill(os.getpid(), signal.SIGKILL)  # no flush, no close

asyncio.run(main())
"""


async def test_a_killed_process_loses_no_acknowledged_write(persistent_backend: Backend) -> None:
    url = "" if persistent_backend.kind == "edge" else str(persistent_backend.root / "qdrant-local")
    root = str(persistent_backend.root)
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", KILLED_WRITER, root, url)
    assert await writer.wait() == -signal.SIGKILL
    store = await persistent_backend.open()
    try:
        assert await store.count(TENANT) == 18 * 3 + 1
        assert await store.count(TENANT, "d0") == 1
        assert await store.count(TENANT, "d1") == 0
    finally:
        await store.close()


async def test_moving_an_old_layout_shard_finishes_after_a_crash_part_way(tmp_path: Path) -> None:
    base = tmp_path / "data" / "qdrant"
    single_collection_layout_shard(base)
    staging = base / f".{DEFAULT_COLLECTION}.adopting"
    staging.mkdir()
    (base / "wal").rename(staging / "wal")  # the crash came after the first move
    store = await Backend("edge", tmp_path).open(collection=DEFAULT_COLLECTION)
    try:
        assert await store.count(TENANT, "old") == 1
        assert sorted(p.name for p in base.iterdir()) == [DEFAULT_COLLECTION]
    finally:
        await store.close()


# ---------------------------------------------------------------------------- versions written out of order


async def test_an_older_version_written_after_a_newer_one_never_removes_it(store: VectorStore) -> None:
    """Two workers finish out of order: version 2 is written first, then version 1 arrives."""
    await index(store, "doc", [("kafka second edition", axis(0))], version=2)
    await index(store, "doc", [("kafka first edition one", axis(0)), ("kafka first edition two", axis(1))], version=1)
    for mode in MODES:
        hits = await find(store, "kafka edition", axis(0), mode)
        assert {h.payload["version"] for h in hits} == {2}, mode
    # Version 1 sits beside it until someone removes it; version 2 is intact.
    await store.delete_document(TENANT, "doc", up_to_version=1)
    assert await store.count(TENANT, "doc") == 1
    assert [h.payload["text"] for h in await find(store, "kafka", axis(0), "dense")] == ["kafka second edition"]


async def test_deleting_up_to_a_version_leaves_later_versions(store: VectorStore) -> None:
    """A deletion sent before version 3 removes versions 1 and 2 however late it is handled."""
    await index(store, "doc", [("kafka two", axis(0))], version=2)
    await index(store, "doc", [("kafka three", axis(0))], version=3)  # drops version 2
    await index(store, "other", [("kafka other", axis(1))], version=1)
    await store.delete_document(TENANT, "doc", up_to_version=2)
    assert await store.count(TENANT, "doc") == 1
    await store.delete_document(TENANT, "doc", up_to_version=3)
    assert await store.count(TENANT, "doc") == 0
    assert await store.count(TENANT, "other") == 1
