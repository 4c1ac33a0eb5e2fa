"""What `gyre eval synth` and `gyre eval sets from-feedback` read from NATS: indexed chunks and rated answers."""

from __future__ import annotations

from gyre_contracts import ChunksReady, FeedbackRecorded
from gyre_runtime.bus.connection import connect
from gyre_runtime.bus.stored import stored_events
from gyre_runtime.config import Settings
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.golden_synth import SourceChunk
from gyre_runtime.vectorstore.base import point_id


async def read_source_chunks(settings: Settings, tenant: str) -> list[SourceChunk]:
    """The chunks of ``tenant``'s documents as they are indexed: the latest ChunksReady of each live document.

    The vector store belongs to the embed service; the chunks it indexed are the ChunksReady events it
    consumed, kept in the GYRE_EMBED stream. Chunk ids are the ones search returns.
    """
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        latest: dict[str, ChunksReady] = {}
        async for event in stored_events(bus, "GYRE_EMBED", ChunksReady, timeout_s=settings.request_timeout_s + 30):
            current = latest.get(event.document_id)
            if event.tenant == tenant and (current is None or current.version < event.version):
                latest[event.document_id] = event
        registry = await DocumentRegistry.open(bus)
        chunks: list[SourceChunk] = []
        for document_id in sorted(latest):
            record = await registry.get(tenant, document_id)
            if record is None or record.status == "deleted":  # its chunks are gone from the index
                continue
            event = latest[document_id]
            chunks.extend(
                SourceChunk(
                    document_id=document_id, chunk_id=point_id(tenant, document_id, event.version, chunk.index),
                    title=event.title, heading_path=tuple(chunk.heading_path), text=chunk.text,
                )
                for chunk in event.chunks
            )
        return chunks
    finally:
        await bus.close()


async def read_feedback(settings: Settings, tenant: str) -> list[FeedbackRecorded]:
    """Every FeedbackRecorded of ``tenant`` in the GYRE_FEEDBACK stream (ratings joined to their answers)."""
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        timeout_s = settings.request_timeout_s + 30
        return [e async for e in stored_events(bus, "GYRE_FEEDBACK", FeedbackRecorded, timeout_s=timeout_s)
                if e.tenant == tenant]
    finally:
        await bus.close()
