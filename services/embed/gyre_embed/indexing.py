"""Turning chunks into vector points: what text is embedded, deterministic ids, a searchable payload."""

from __future__ import annotations

from collections.abc import Sequence

from gyre_contracts import Chunk, ChunksReady, RetrievedChunk
from gyre_runtime.vectorstore import SearchHit, SparseVector, VectorPoint, point_id


def embedding_text(chunk: Chunk, title: str = "") -> str:
    """The chunk with its place in the document: "Title > Heading > Subheading" then the text.

    Chunk text excludes headings (they travel in ``heading_path``); putting them back in front
    of what is embedded lets a query that names a section find it.
    """
    path: list[str] = [p for p in (title, *chunk.heading_path) if p]
    # Titles often repeat the first heading.
    path = [p for i, p in enumerate(path) if i == 0 or p != path[i - 1]]
    return (" > ".join(path) + "\n" + chunk.text) if path else chunk.text


def build_points(
    event: ChunksReady, vectors: Sequence[Sequence[float]], sparse: Sequence[SparseVector | None]
) -> list[VectorPoint]:
    if not len(vectors) == len(sparse) == len(event.chunks):
        raise ValueError(f"{len(vectors)} vectors and {len(sparse)} sparse vectors for {len(event.chunks)} chunks")
    return [
        VectorPoint(
            id=point_id(event.tenant, event.document_id, event.version, chunk.index),
            vector=[float(x) for x in vector],
            sparse=sparse_vector,
            payload={
                "tenant": event.tenant,
                "document_id": event.document_id,
                "version": event.version,
                "chunk_index": chunk.index,
                "text": chunk.text,
                "start": chunk.start,
                "end": chunk.end,
                "heading_path": list(chunk.heading_path),
                "page": chunk.page,
                "title": event.title,
                "metadata": event.metadata,
            },
        )
        for chunk, vector, sparse_vector in zip(event.chunks, vectors, sparse, strict=True)
    ]


def hit_to_chunk(hit: SearchHit) -> RetrievedChunk:
    p = hit.payload
    page = p.get("page")
    return RetrievedChunk(
        document_id=str(p.get("document_id", "")),
        chunk_id=hit.id,
        version=int(p.get("version", 0)),
        index=int(p.get("chunk_index", 0)),
        score=hit.score,
        text=str(p.get("text", "")),
        title=str(p.get("title", "")),
        metadata=dict(p.get("metadata") or {}),
        heading_path=tuple(str(h) for h in p.get("heading_path") or ()),
        page=int(page) if page is not None else None,
    )
