"""Embed service wiring: the embedding model, the Qdrant Edge shard, consumers and request/reply."""

from __future__ import annotations

from typing import Any

from gyre_embed.handlers import EmbedHandlers
from gyre_runtime.config import Settings
from gyre_runtime.models.embedder import OnnxEmbedder
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from gyre_runtime.vectorstore.edge import QdrantEdgeStore

# Retrieval and query embedding are answered by any replica of this queue group.
QUEUE = "embed"


def create_app(settings: Settings) -> Any:
    service = Service("embed", settings)

    @service.on_start
    async def wire(svc: Service) -> None:
        model_dir = settings.model_path / settings.embedding_model
        embedder = OnnxEmbedder(model_dir, threads=settings.onnx_threads)
        store = QdrantEdgeStore(settings.qdrant_shard_path, embedder.dimension)
        handlers = EmbedHandlers(
            embedder=embedder,  # type: ignore[arg-type]
            store=store,
            registry=DocumentRegistry(await svc.bus.kv("gyre_documents")),
            publisher=svc.publisher,
            batch_size=settings.embed_batch_size,
        )
        svc.state["store"] = store
        svc.consume("embed", handlers.index)
        svc.consume("embed_index", handlers.delete)
        await svc.bus.nc.subscribe(svc.bus.subject("retrieve"), queue=QUEUE, cb=handlers.retrieve)
        await svc.bus.nc.subscribe(svc.bus.subject("embeddings"), queue=QUEUE, cb=handlers.embeddings)
        await ModelRegistry(await svc.bus.kv("gyre_models")).register(
            ModelEntry(id=settings.embedding_model, kind="embedding", version=embedder.version, served_by="embed")
        )

    @service.on_stop
    async def close_store(svc: Service) -> None:
        store = svc.state.get("store")
        if store is not None:
            await store.close()

    return service.asgi()


def main() -> None:
    run_service("embed", create_app)
