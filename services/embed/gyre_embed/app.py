"""Embed service wiring: the embedding model and its scheduler, the vector store, consumers and request/reply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gyre_embed.batching import EmbeddingScheduler
from gyre_embed.handlers import EmbedHandlers
from gyre_runtime.config import Settings
from gyre_runtime.models.embedder import OnnxEmbedder
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from gyre_runtime.vectorstore import Bm25Encoder, open_vector_store

# Retrieval and query embedding are answered by any replica of this queue group.
QUEUE = "embed"


def create_app(settings: Settings) -> Any:
    async def stats(request: Request) -> JSONResponse:
        """What this replica holds and how its batches go (operators, checks, benchmarks)."""
        store, scheduler = service.state.get("store"), service.state.get("scheduler")
        if store is None or scheduler is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        batches = scheduler.stats
        return JSONResponse({
            "collection": service.state["collection"],
            "points": await store.count_all(),
            "embedding_calls": batches.calls,
            "query_calls": batches.query_calls,
            "texts_embedded": batches.texts,
            "mean_batch": batches.texts / batches.calls if batches.calls else 0.0,
            "model_busy_s": round(batches.busy_s, 3),
        })

    service = Service("embed", settings, routes=[Route("/stats", stats)])

    async def wire(svc: Service) -> None:
        model_dir = settings.model_path / settings.embedding_model
        embedder = OnnxEmbedder(model_dir, threads=settings.model_threads, batch_size=settings.embed_batch_size)
        scheduler = EmbeddingScheduler(
            embedder.embed, max_batch=settings.embed_batch_size, max_wait_s=settings.embed_max_wait_ms / 1000
        )
        store = await open_vector_store(
            settings, embedder.dimension, url=settings.qdrant_url or None, collection=settings.qdrant_collection
        )
        handlers = EmbedHandlers(
            embedder=embedder,
            scheduler=scheduler,
            sparse=Bm25Encoder(),
            store=store,
            registry=DocumentRegistry(await svc.bus.kv("gyre_documents")),
            publisher=svc.publisher,
        )
        svc.state.update(store=store, scheduler=scheduler, collection=settings.qdrant_collection)
        svc.consume("embed", handlers.index)
        svc.consume("embed_index", handlers.delete)
        await svc.bus.nc.subscribe(svc.bus.subject("retrieve"), queue=QUEUE, cb=handlers.retrieve)
        await svc.bus.nc.subscribe(svc.bus.subject("embeddings"), queue=QUEUE, cb=handlers.embeddings)
        await ModelRegistry(await svc.bus.kv("gyre_models")).register(
            ModelEntry(id=settings.embedding_model, kind="embedding", version=embedder.version, served_by="embed")
        )

    async def close(svc: Service) -> None:
        if "scheduler" in svc.state:
            await svc.state["scheduler"].stop()
        if "store" in svc.state:
            await svc.state["store"].close()

    service.on_start(wire)
    service.on_stop(close)
    return service.asgi()


def main() -> None:
    run_service("embed", create_app)
