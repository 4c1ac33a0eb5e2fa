"""Turning embedded chunks into vector points with deterministic ids and a searchable payload."""

from __future__ import annotations

from collections.abc import Sequence

from gyre_contracts import ChunksReady, RetrievedChunk
from gyre_runtime.vectorstore import SearchHit, VectorPoint, point_id


def build_points(event: ChunksReady, vectors: Sequence[Sequence[float]]) -> list[VectorPoint]:
    if len(vectors) != len(event.chunks):
        raise ValueError(f"{len(vectors)} vectors for {len(event.chunks)} chunks")
    return [
        VectorPoint(
            id=point_id(event.tenant, event.document_id, event.version, chunk.index),
            vector=[float(x) for x in vector],
            payload={
                "tenant": event.tenant,
                "document_id": event.document_id,
                "version": event.version,
                "chunk_index": chunk.index,
                "text": chunk.text,
                "start": chunk.start,
                "end": chunk.end,
                "title": event.title,
                "metadata": event.metadata,
            },
        )
        for chunk, vector in zip(event.chunks, vectors, strict=True)
    ]


def hit_to_chunk(hit: SearchHit) -> RetrievedChunk:
    p = hit.payload
    return RetrievedChunk(
        document_id=str(p.get("document_id", "")),
        chunk_id=hit.id,
        version=int(p.get("version", 0)),
        index=int(p.get("chunk_index", 0)),
        score=hit.score,
        text=str(p.get("text", "")),
        title=str(p.get("title", "")),
        metadata=dict(p.get("metadata") or {}),
    )
