"""Ingest service wiring: the submission and deletion consumers, the embedding tokenizer, shared state."""

from __future__ import annotations

from typing import Any, cast

from tokenizers import Tokenizer

from gyre_ingest.dedup_index import DedupIndex
from gyre_ingest.handlers import DeletionHandler, IngestHandler
from gyre_ingest.pipeline import IngestConfig
from gyre_runtime.config import Settings
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry
from gyre_runtime.state.tenants import DuplicatePolicy, PiiPolicy, TenantPolicies, TenantPolicy


def load_tokenizer(settings: Settings) -> Tokenizer:
    path = settings.model_path / settings.embedding_model / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the models with `just models`")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def default_policy(settings: Settings) -> TenantPolicy:
    return TenantPolicy(
        pii=cast(PiiPolicy, settings.pii_policy),
        duplicates=cast(DuplicatePolicy, settings.duplicate_policy),
        near_duplicate_threshold=settings.near_duplicate_threshold,
    )


def create_app(settings: Settings) -> Any:
    service = Service("ingest", settings)
    config = IngestConfig.from_settings(settings)  # invalid settings fail at start, loudly

    async def wire(svc: Service) -> None:
        dedup = DedupIndex(await svc.bus.kv("gyre_dedup"))
        handler = IngestHandler(
            config=config,
            tokenizer=load_tokenizer(settings),
            registry=DocumentRegistry(await svc.bus.kv("gyre_documents")),
            dedup=dedup,
            policies=TenantPolicies(await svc.bus.kv("gyre_tenants"), default_policy(settings)),
            publisher=svc.publisher,
        )
        svc.consume("ingest", handler)
        svc.consume("ingest_index", DeletionHandler(dedup, handler.registry, svc.bus))

    service.on_start(wire)
    return service.asgi()


def main() -> None:
    run_service("ingest", create_app)
