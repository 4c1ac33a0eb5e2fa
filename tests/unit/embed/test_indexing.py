"""Points are built with deterministic ids, so a redelivery overwrites instead of duplicating."""

from __future__ import annotations

import datetime as dt

import pytest

from gyre_contracts import Chunk, ChunksReady
from gyre_embed.indexing import build_points, embedding_text, hit_to_chunk
from gyre_runtime.vectorstore import SearchHit, SparseVector, point_id

SPARSE = SparseVector(indices=[1, 2], values=[1.0, 0.5])


def event(version: int = 1) -> ChunksReady:
    chunks = tuple(Chunk(index=i, text=f"t{i}", start=0, end=2, token_count=1) for i in range(3))
    return ChunksReady(
        tenant="a", document_id="doc", version=version, title="T", metadata={"k": "v"}, chunks=chunks,
        submitted_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_point_ids_are_deterministic_and_distinct_per_tenant_document_version_chunk() -> None:
    assert point_id("a", "doc", 1, 0) == point_id("a", "doc", 1, 0)
    ids = {point_id(t, d, v, c) for t in "ab" for d in ("x", "y") for v in (1, 2) for c in (0, 1)}
    assert len(ids) == 16


def test_points_carry_tenant_document_version_and_text() -> None:
    points = build_points(event(), [[0.1, 0.2]] * 3, [SPARSE] * 3)
    assert [p.id for p in points] == [point_id("a", "doc", 1, i) for i in range(3)]
    assert points[2].payload["text"] == "t2" and points[2].payload["tenant"] == "a"
    assert build_points(event(), [[0.1, 0.2]] * 3, [SPARSE] * 3) == points


def test_a_vector_count_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_points(event(), [[0.1]], [SPARSE])


def test_a_search_hit_becomes_a_retrieved_chunk() -> None:
    payload = build_points(event(), [[0.1]] * 3, [SPARSE] * 3)[1].payload
    chunk = hit_to_chunk(SearchHit(id="p", score=0.5, payload=payload))
    assert (chunk.document_id, chunk.index, chunk.text, chunk.metadata) == ("doc", 1, "t1", {"k": "v"})


def test_the_embedded_text_carries_the_title_and_heading_path() -> None:
    chunk = Chunk(index=0, text="Use pip.", start=0, end=8, token_count=3, heading_path=("Install", "On Linux"))
    assert embedding_text(chunk, "Guide") == "Guide > Install > On Linux\nUse pip."
    assert embedding_text(chunk, "Install") == "Install > On Linux\nUse pip."
    assert embedding_text(Chunk(index=0, text="x", start=0, end=1, token_count=1)) == "x"
