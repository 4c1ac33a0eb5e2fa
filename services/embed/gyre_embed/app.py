"""Embed service wiring: the embedding model and its scheduler, the vector store, consumers and request/reply."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gyre_contracts import EmbedRequest, RetrieveRequest
from gyre_embed.handlers import EmbedHandlers
from gyre_embed.index_targets import ActiveIndex, ActiveIndexRecord, IndexTarget, LocalTargets
from gyre_embed.reindex import Reindexer
from gyre_embed.replay import BusReplaySource
from gyre_embed.serving_index import ServingIndex
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from gyre_runtime.vectorstore import Bm25Encoder

log = get_logger()


def create_app(settings: Settings) -> Any:
    async def stats(request: Request) -> JSONResponse:
        """What this replica holds and how its batches go (operators, checks, benchmarks)."""
        serving = service.state.get("serving")
        if serving is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        active = serving.active
        build = serving.build
        batches = active.scheduler.stats
        return JSONResponse({
            "collection": active.collection,
            "embedding_model": active.embedder.version,
            "points": await active.store.count_all(),
            "rebuilding": build.target.collection if build is not None else None,
            "embedding_calls": batches.calls,
            "query_calls": batches.query_calls,
            "texts_embedded": batches.texts,
            "mean_batch": batches.texts / batches.calls if batches.calls else 0.0,
            "model_busy_s": round(batches.busy_s, 3),
            "refused_embedding_requests": batches.refused_requests,
        })

    service = Service("embed", settings, routes=[Route("/stats", stats)])
    targets = LocalTargets(settings)

    async def wire(svc: Service) -> None:
        # The collection serving search is recorded in KV once a rebuild has switched to one; until
        # then it is the one the settings name.
        active_record = await ActiveIndexRecord.open(svc.bus)
        recorded = await active_record.get()
        if recorded is None:
            recorded = ActiveIndex(collection=settings.qdrant_collection, embedding_model=settings.embedding_model)
        elif (recorded.collection, recorded.embedding_model) != (settings.qdrant_collection, settings.embedding_model):
            log.info("active_collection_from_kv", collection=recorded.collection, model=recorded.embedding_model,
                     settings_collection=settings.qdrant_collection, settings_model=settings.embedding_model,
                     hint="`gyre reindex` switched collections; the KV record wins over the settings")
        active = await targets.open(recorded.collection, recorded.embedding_model, share_model_of=None)
        serving = ServingIndex(active=active)
        svc.state["serving"] = serving
        models = await ModelRegistry.open(svc.bus)

        async def register_model(target: IndexTarget) -> None:
            await models.register(ModelEntry(
                id=target.model, kind="embedding", version=target.embedder.version, served_by="embed"
            ))

        registry = await DocumentRegistry.open(svc.bus)
        sparse = Bm25Encoder()
        handlers = EmbedHandlers(
            serving=serving,
            sparse=sparse,
            registry=registry,
            publisher=svc.publisher,
            reindexer=Reindexer(
                serving=serving, targets=targets, source=BusReplaySource(svc.bus, registry.kv),
                active_record=active_record, registry=registry, publisher=svc.publisher, sparse=sparse,
                max_deliver=settings.max_deliver, on_switch=register_model,
            ),
        )
        svc.consume("embed", handlers.index)
        svc.consume("embed_index", handlers.delete)
        svc.consume("embed_reindex", handlers.reindex)
        # Each request is answered in a task of its own (FastStream's concurrent subscriber), so they
        # all reach the embedding scheduler at once and it decides the turns (fair between tenants).
        svc.respond(RetrieveRequest.subject, handlers.retrieve)
        svc.respond(EmbedRequest.subject, handlers.embeddings)
        await register_model(active)

    async def close(svc: Service) -> None:
        serving = svc.state.get("serving")
        if serving is not None:
            await serving.close()

    service.on_start(wire)
    service.on_stop(close)
    return service.asgi()


def main() -> None:
    run_service("embed", create_app)
