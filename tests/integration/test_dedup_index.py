"""The de-duplication index on a real nats-server: exact and near duplicates, tenants, forgetting, races."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.js.errors import KeyNotFoundError

from gyre_ingest.dedup import Duplicate, content_hash, estimate_similarity, lsh_band_keys, minhash_signature
from gyre_ingest.dedup_index import DedupIndex
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import Settings

TENANT = "acme"
WAIT_S = 20.0

SENTENCES = [
    f"Clause {n}: the {adjective} supplier delivers {item} to the {place} within {n + 2} working days."
    for n, (adjective, item, place) in enumerate(
        (a, i, p)
        for a in ("local", "regional", "national")
        for i in ("paper", "toner", "chairs", "desks")
        for p in ("warehouse", "head office")
    )
]
BASE = " ".join(SENTENCES)  # 24 sentences, ~340 words
ONE_SENTENCE_CHANGED = BASE.replace(SENTENCES[10], "A new clause says that returns are collected every Friday.")
UNRELATED = " ".join(
    f"Step {n}: stir the {ingredient} into the {vessel} and simmer for {n + 3} minutes on a low heat."
    for n, (ingredient, vessel) in enumerate(
        (i, v) for i in ("onions", "garlic", "tomatoes", "beans", "rice", "stock") for v in ("pan", "pot", "wok")
    )
)


def fingerprint(text: str) -> tuple[str, tuple[int, ...]]:
    return content_hash(text), minhash_signature(text)


@pytest.fixture
async def index(bus: Bus) -> DedupIndex:
    return DedupIndex(await bus.kv("gyre_dedup"))


async def remember(index: DedupIndex, document_id: str, text: str, tenant: str = TENANT) -> Duplicate | None:
    text_hash, signature = fingerprint(text)
    return await index.remember(tenant, document_id, text_hash, signature)


async def find(
    index: DedupIndex, document_id: str, text: str, *, threshold: float = 0.8, tenant: str = TENANT
) -> Duplicate | None:
    text_hash, signature = fingerprint(text)
    return await index.find_duplicate(tenant, document_id, text_hash, signature, threshold)


async def bucket_keys(bus: Bus) -> list[str]:
    """The keys holding a value now, read from the bucket's stream (``kv.keys()`` races on tombstones)."""
    kv = await bus.kv("gyre_dedup")
    info = await bus.js.stream_info(f"KV_{bus.bucket_name('gyre_dedup')}", subjects_filter=">")
    keys = []
    for subject in info.state.subjects or {}:
        key = subject.split(".", 2)[2]  # "$KV.<bucket>.<key>"
        with contextlib.suppress(KeyNotFoundError):
            await kv.get(key)
            keys.append(key)
    return sorted(keys)


@contextlib.asynccontextmanager
async def connections(settings: Settings, count: int) -> AsyncIterator[list[DedupIndex]]:
    """``count`` separate NATS connections, each with its own index: writers that really race."""
    buses = [await connect(settings, name=f"gyre-test-{n}") for n in range(count)]
    try:
        yield [DedupIndex(await b.kv("gyre_dedup")) for b in buses]
    finally:
        await asyncio.gather(*(b.close() for b in buses))


def test_the_fixture_texts_are_near_duplicates_and_unrelated_as_intended() -> None:
    base, changed, unrelated = (minhash_signature(t) for t in (BASE, ONE_SENTENCE_CHANGED, UNRELATED))
    assert 0.8 <= estimate_similarity(base, changed) < 0.98
    assert estimate_similarity(base, unrelated) < 0.1


async def test_an_exact_duplicate_is_found_with_the_original_id(index: DedupIndex) -> None:
    assert await remember(index, "original", BASE) is None
    # Case and whitespace do not make a document new.
    duplicate = await find(index, "copy", BASE.upper().replace(" ", "   "))
    assert duplicate == Duplicate(kind="exact", document_id="original", similarity=1.0)


async def test_a_near_duplicate_is_found_above_the_threshold_and_not_below(index: DedupIndex) -> None:
    await remember(index, "original", BASE)
    similarity = estimate_similarity(minhash_signature(BASE), minhash_signature(ONE_SENTENCE_CHANGED))

    found = await find(index, "edited", ONE_SENTENCE_CHANGED, threshold=0.8)
    assert found == Duplicate(kind="near", document_id="original", similarity=similarity)
    assert await find(index, "edited", ONE_SENTENCE_CHANGED, threshold=similarity) is not None
    assert await find(index, "edited", ONE_SENTENCE_CHANGED, threshold=min(1.0, similarity + 0.01)) is None
    assert await find(index, "recipe", UNRELATED, threshold=0.3) is None


async def test_the_most_similar_near_duplicate_is_named(index: DedupIndex) -> None:
    await remember(index, "far", BASE.replace(SENTENCES[3], "x.").replace(SENTENCES[15], "y."))
    await remember(index, "close", BASE.replace(SENTENCES[3], "x."))
    found = await find(index, "new", BASE.replace(SENTENCES[3], "z."), threshold=0.5)
    assert found is not None and found.document_id == "close"


async def test_another_tenants_identical_document_is_not_a_duplicate(index: DedupIndex) -> None:
    await remember(index, "original", BASE, tenant="globex")
    assert await find(index, "copy", BASE, tenant=TENANT) is None
    assert await find(index, "copy", ONE_SENTENCE_CHANGED, tenant=TENANT, threshold=0.5) is None
    assert await remember(index, "copy", BASE, tenant=TENANT) is None  # and it may claim the same hash


async def test_resubmitting_the_same_id_is_not_a_duplicate_of_itself(index: DedupIndex) -> None:
    await remember(index, "doc", BASE)
    assert await find(index, "doc", BASE) is None
    assert await find(index, "doc", ONE_SENTENCE_CHANGED) is None
    assert await remember(index, "doc", BASE) is None  # a redelivery changes nothing


async def test_forget_removes_the_hash_signature_and_bands(index: DedupIndex, bus: Bus) -> None:
    await remember(index, "doc", BASE)
    assert await bucket_keys(bus)
    await index.forget(TENANT, "doc")

    assert await find(index, "copy", BASE) is None
    assert await find(index, "edited", ONE_SENTENCE_CHANGED, threshold=0.5) is None
    assert await bucket_keys(bus) == []
    await index.forget(TENANT, "doc")  # forgetting twice is harmless


async def test_forget_keeps_the_other_documents_of_shared_bands(index: DedupIndex) -> None:
    await remember(index, "a", BASE)
    await remember(index, "b", ONE_SENTENCE_CHANGED)
    await index.forget(TENANT, "a")
    found = await find(index, "c", BASE)
    assert found is not None and found.kind == "near" and found.document_id == "b"


async def test_replacing_a_documents_content_drops_its_old_entries(index: DedupIndex, bus: Bus) -> None:
    await remember(index, "doc", BASE)
    await remember(index, "doc", UNRELATED)  # a new version with other content
    assert await find(index, "copy", BASE, threshold=0.3) is None
    assert await find(index, "copy", UNRELATED) == Duplicate(kind="exact", document_id="doc", similarity=1.0)

    await index.forget(TENANT, "doc")
    assert await bucket_keys(bus) == []


async def test_remembering_held_content_returns_the_holder_and_records_nothing(index: DedupIndex, bus: Bus) -> None:
    await remember(index, "original", BASE)
    before = await bucket_keys(bus)
    assert await remember(index, "copy", BASE) == Duplicate(kind="exact", document_id="original", similarity=1.0)
    assert await bucket_keys(bus) == before


async def test_policy_keep_records_a_duplicate_beside_the_original(index: DedupIndex) -> None:
    text_hash, signature = fingerprint(BASE)
    await index.remember(TENANT, "original", text_hash, signature)
    kept = await index.remember(TENANT, "copy", text_hash, signature, allow_duplicate=True)
    assert kept == Duplicate(kind="exact", document_id="original", similarity=1.0)
    assert await find(index, "third", BASE) == Duplicate(kind="exact", document_id="original", similarity=1.0)

    await index.forget(TENANT, "original")
    assert await find(index, "third", BASE) == Duplicate(kind="exact", document_id="copy", similarity=1.0)


async def test_of_concurrent_claims_on_the_same_content_exactly_one_wins(settings: Settings, bus: Bus) -> None:
    text_hash, signature = fingerprint(BASE)
    async with connections(settings, 6) as indexes:
        async with asyncio.timeout(WAIT_S):
            results = await asyncio.gather(
                *(idx.remember(TENANT, f"doc-{n}", text_hash, signature) for n, idx in enumerate(indexes))
            )
    winners = [f"doc-{n}" for n, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    winner = winners[0]
    assert all(r == Duplicate(kind="exact", document_id=winner, similarity=1.0) for r in results if r is not None)

    index = DedupIndex(await bus.kv("gyre_dedup"))
    assert await find(index, "late", BASE) == Duplicate(kind="exact", document_id=winner, similarity=1.0)
    # The losers left nothing behind: forgetting the winner empties the bucket.
    await index.forget(TENANT, winner)
    assert await bucket_keys(bus) == []


async def test_concurrent_writers_to_shared_bands_lose_no_document(settings: Settings, bus: Bus) -> None:
    texts = {f"doc-{n}": BASE.replace(SENTENCES[n], f"Variant {n} of this clause.") for n in range(8)}
    async with connections(settings, len(texts)) as indexes:
        async with asyncio.timeout(WAIT_S):
            results = await asyncio.gather(
                *(remember(idx, doc, text) for idx, (doc, text) in zip(indexes, texts.items(), strict=True))
            )
    assert results == [None] * len(texts)

    index = DedupIndex(await bus.kv("gyre_dedup"))
    for doc, text in texts.items():
        found = await find(index, f"probe-of-{doc}", text)
        assert found == Duplicate(kind="exact", document_id=doc, similarity=1.0)
    # Every band of every document lists it, however the compare-and-set writes interleaved.
    for doc, text in texts.items():
        signature = minhash_signature(text)
        members = [await index._read_ids(index._band_key(TENANT, b)) for b in lsh_band_keys(signature)]
        assert all(doc in ids for ids in members)


async def test_forgetting_one_document_while_another_joins_its_band_keeps_the_newcomer(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Forget reads a band holding only the leaving document, and means to delete it. Between that
    # read and the delete, another writer adds a newcomer: the delete is conditional on the
    # revision read, so it fails, is retried, and the newcomer stays.
    kv = await bus.kv("gyre_dedup")
    index = DedupIndex(kv)
    await remember(index, "leaving", BASE)
    band_key = index._band_key(TENANT, lsh_band_keys(minhash_signature(BASE))[0])
    other_writer = await bus.kv("gyre_dedup")
    read = kv.get
    interfered = False

    async def read_then_someone_writes(key: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal interfered
        entry = await read(key, *args, **kwargs)
        if key == band_key and not interfered:
            interfered = True
            await other_writer.update(key, b'["leaving","newcomer"]', last=entry.revision)
        return entry

    monkeypatch.setattr(kv, "get", read_then_someone_writes)
    await index.forget(TENANT, "leaving")
    assert interfered
    assert json.loads((await other_writer.get(band_key)).value) == ["newcomer"]
