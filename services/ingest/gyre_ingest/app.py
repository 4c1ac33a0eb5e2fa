"""Ingest service wiring: the submission and deletion consumers, the extraction workers, shared state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gyre_ingest.dedup_index import DedupIndex
from gyre_ingest.extraction_pool import ExtractionPool, WorkerLimits
from gyre_ingest.handlers import DeletionHandler, IngestHandler
from gyre_ingest.pipeline import IngestConfig
from gyre_runtime.bus.topology import consumers_of
from gyre_runtime.config import Settings
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.tenants import TenantPolicies


def tokenizer_path(settings: Settings) -> Path:
    path = settings.model_path / settings.embedding_model / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the models with `just models`")
    return path


def extraction_limits(settings: Settings) -> tuple[WorkerLimits, int]:
    """What one document may cost, and how many workers read documents (one per document in flight by default)."""
    consumer = next(spec for spec in consumers_of("ingest") if spec.durable == "ingest")
    if settings.extraction_timeout_s >= consumer.max_processing_s:
        raise ValueError(
            f"GYRE_EXTRACTION_TIMEOUT_S={settings.extraction_timeout_s:g} must be below the ingest consumer's "
            f"maximum processing time ({consumer.max_processing_s:g} s), or a slow document is retried "
            "instead of rejected"
        )
    limits = WorkerLimits(
        timeout_s=settings.extraction_timeout_s, memory_bytes=settings.extraction_memory_mb * 1024 * 1024
    )
    return limits, settings.extraction_workers or consumer.concurrency


def create_app(settings: Settings) -> Any:
    service = Service("ingest", settings)
    config = IngestConfig.from_settings(settings)  # invalid settings fail at start, loudly
    limits, workers = extraction_limits(settings)
    pools: list[ExtractionPool] = []

    async def wire(svc: Service) -> None:
        pool = ExtractionPool(tokenizer_path(settings), config, limits, workers)
        await pool.start()
        pools.append(pool)
        dedup = await DedupIndex.open(svc.bus)
        handler = IngestHandler(
            extraction=pool,
            registry=await DocumentRegistry.open(svc.bus),
            dedup=dedup,
            policies=await TenantPolicies.open(svc.bus),
            publisher=svc.publisher,
        )
        svc.consume("ingest", handler)
        svc.consume("ingest_index", DeletionHandler(dedup, handler.registry, svc.bus))

    async def stop_workers(svc: Service) -> None:
        while pools:  # a start retried after the bus failed has stopped, and closed, the pool of the last try
            await pools.pop().close()

    service.on_start(wire)
    service.on_stop(stop_workers)
    return service.asgi()


def main() -> None:
    run_service("ingest", create_app)
