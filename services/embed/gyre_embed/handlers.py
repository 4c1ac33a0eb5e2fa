"""Embed's handlers: index a document version, delete a document, answer retrieval and embedding calls."""

from __future__ import annotations

import time
from dataclasses import dataclass

from nats.aio.msg import Msg

from gyre_contracts import (
    ChunksReady,
    DocumentDeleted,
    DocumentDeletionRequested,
    DocumentIndexed,
    EmbedRequest,
    EmbedResult,
    EnvelopeError,
    ReindexRequested,
    RetrieveRequest,
    RetrieveResult,
    decode_event,
    utc_now,
)
from gyre_embed.batching import TenantQueueFull
from gyre_embed.indexing import build_points, embedding_text, hit_to_chunk
from gyre_embed.reindex import Reindexer
from gyre_embed.serving_index import ServingIndex
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.bus.ids import derived_id
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry, indexing_verdict
from gyre_runtime.vectorstore import Bm25Encoder, InvalidSearch

log = get_logger()


@dataclass
class EmbedHandlers:
    """``serving`` says which collection (and model) answers searches, and which one a rebuild fills."""

    serving: ServingIndex
    sparse: Bm25Encoder
    registry: DocumentRegistry
    publisher: Publisher
    reindexer: Reindexer | None = None

    async def index(self, event: ChunksReady, ctx: MessageContext) -> None:
        """Index one version, unless a deletion sent after it or a newer accepted version exists.

        Checked before writing and again after: a deletion or newer version that arrives while this
        one is written makes it remove what it wrote (only its own version and older ones: the store
        never lets an older version remove a newer one).
        """
        verdict = indexing_verdict(await self.registry.get(event.tenant, event.document_id), event.version)
        if verdict != "current":
            log.info("stale_version_skipped", document_id=event.document_id, version=event.version, reason=verdict)
            return
        started = time.perf_counter()
        texts = [embedding_text(c, event.title) for c in event.chunks]
        sparse = [self.sparse.encode_document(t) for t in texts]
        active, build = self.serving.active, self.serving.build
        async with active.use():
            vectors = await active.scheduler.embed_bulk(texts)
            await active.store.replace_document(
                event.tenant, event.document_id, event.version, build_points(event, vectors, sparse)
            )
        if build is not None:  # a rebuild runs: the new collection gets the document too
            same_model = build.target.shares_model_with(active)
            await build.index_live(event, texts, sparse, vectors if same_model else None)
        embedding_model = active.embedder.version
        embed_ms = (time.perf_counter() - started) * 1000
        now = utc_now()
        verdict = "current"

        def mark_indexed(current: DocumentRecord | None) -> DocumentRecord | None:
            nonlocal verdict
            verdict = indexing_verdict(current, event.version)
            if verdict != "current":
                return None
            if current is None:
                current = DocumentRecord(
                    document_id=event.document_id, tenant=event.tenant, version=event.version,
                    submissions=event.version,
                )
            if current.submissions <= event.version:
                current.status = "indexed"  # else a newer submission is pending (or was rejected): its status stands
            current.chunks = len(event.chunks)
            current.indexed_at = now
            current.embedding_model = embedding_model
            return current

        await self.registry.update(event.tenant, event.document_id, mark_indexed)
        if verdict != "current":
            async with active.use():
                await active.store.delete_document(event.tenant, event.document_id, up_to_version=event.version)
            log.info("stale_version_removed", document_id=event.document_id, version=event.version, reason=verdict)
            return
        await self.publisher.publish(
            DocumentIndexed(
                tenant=event.tenant, document_id=event.document_id, version=event.version,
                chunk_count=len(event.chunks), embedding_model=embedding_model, embed_ms=embed_ms,
                submitted_at=event.submitted_at, indexed_at=now,
            ),
            event_id=derived_id("indexed", event.tenant, event.document_id, event.version),
            traceparent=ctx.traceparent,
        )
        log.info("document_indexed", document_id=event.document_id, tenant=event.tenant,
                 version=event.version, chunks=len(event.chunks), embed_ms=round(embed_ms, 1))

    async def delete(self, event: DocumentDeletionRequested, ctx: MessageContext) -> None:
        """Remove the versions the deletion covers; a version sent after it stays, however late this runs."""
        up_to = event.up_to_version
        if not up_to:  # another system's deletion naming no version: what the registry says is deleted
            record = await self.registry.get(event.tenant, event.document_id)
            up_to = max(record.deleted_up_to_version, record.submissions) if record is not None else 0
        active, build = self.serving.active, self.serving.build
        async with active.use():
            await active.store.delete_document(event.tenant, event.document_id, up_to_version=up_to or None)
        if build is not None:
            await build.delete_live(event.tenant, event.document_id, up_to or None)
        await self.publisher.publish(
            DocumentDeleted(tenant=event.tenant, document_id=event.document_id),
            event_id=derived_id("deleted", ctx.event_id),
        )
        log.info("document_deleted", document_id=event.document_id, tenant=event.tenant, up_to_version=up_to)

    async def reindex(self, event: ReindexRequested, ctx: MessageContext) -> None:
        """Rebuild a collection from the stored events and switch search to it (see reindex.py)."""
        if self.reindexer is None:
            raise RuntimeError("re-indexing is not wired in this replica")
        await self.reindexer.handle(event, ctx)

    async def retrieve(self, msg: Msg) -> None:
        """Request/reply: a query's top-k chunks, always filtered to the request's tenant."""
        started = time.perf_counter()
        try:
            request = decode_event(msg.data, RetrieveRequest, msg.headers)
            # One collection for the whole call, and the model that filled it: a switch meanwhile waits.
            async with self.serving.active.use() as active:
                dense = (
                    (await active.scheduler.embed_query([request.query], tenant=request.tenant))[0]
                    if request.mode != "sparse" else None
                )
                sparse = self.sparse.encode_query(request.query) if request.mode != "dense" else None
                hits = await active.store.search(
                    request.tenant, dense=dense, sparse=sparse, top_k=request.top_k, mode=request.mode,
                    metadata_filter=request.filter or None,
                )
            result = RetrieveResult(
                tenant=request.tenant, hits=tuple(hit_to_chunk(h) for h in hits),
                retrieval_ms=(time.perf_counter() - started) * 1000, embedding_model=active.embedder.version,
            )
        except (EnvelopeError, InvalidSearch) as exc:
            result = RetrieveResult(error=str(exc))
        except Exception as exc:  # a failed search is answered, never left to time out
            log.exception("retrieve_failed")
            result = RetrieveResult(error=f"{type(exc).__name__}: {exc}")
        await self.publisher.reply(msg, result)

    async def embeddings(self, msg: Msg) -> None:
        """Request/reply: vectors for texts (the OpenAI-compatible embeddings endpoint)."""
        try:
            request = decode_event(msg.data, EmbedRequest, msg.headers)
            async with self.serving.active.use() as active:
                vectors = await active.scheduler.embed_request(list(request.texts), tenant=request.tenant)
            counter = getattr(active.embedder, "count_tokens", None)
            counts = tuple(counter(t) if counter else 0 for t in request.texts)
            result = EmbedResult(
                tenant=request.tenant, vectors=tuple(tuple(v) for v in vectors), token_counts=counts,
                embedding_model=active.embedder.version,
            )
        except EnvelopeError as exc:
            result = EmbedResult(error=str(exc))
        except TenantQueueFull as exc:  # the gateway answers 429 with Retry-After
            log.info("embeddings_refused_queue_full", tenant=exc.tenant, waiting=exc.waiting, limit=exc.limit)
            result = EmbedResult(tenant=exc.tenant, error=str(exc), retry_after_s=exc.retry_after_s)
        except Exception as exc:
            log.exception("embeddings_failed")
            result = EmbedResult(error=f"{type(exc).__name__}: {exc}")
        await self.publisher.reply(msg, result)
