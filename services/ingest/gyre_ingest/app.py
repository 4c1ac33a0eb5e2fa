"""Ingest service wiring: the DocumentSubmitted consumer and the embedding tokenizer it chunks with."""

from __future__ import annotations

from typing import Any

from tokenizers import Tokenizer

from gyre_ingest.handlers import IngestHandler
from gyre_runtime.config import Settings
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.documents import DocumentRegistry


def load_tokenizer(settings: Settings) -> Tokenizer:
    path = settings.model_path / settings.embedding_model / "tokenizer.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build the models with `just models`")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def create_app(settings: Settings) -> Any:
    service = Service("ingest", settings)

    @service.on_start
    async def wire(svc: Service) -> None:
        registry = DocumentRegistry(await svc.bus.kv("gyre_documents"))
        handler = IngestHandler(settings, load_tokenizer(settings), registry, svc.publisher)
        svc.consume("ingest", handler)

    return service.asgi()


def main() -> None:
    run_service("ingest", create_app)
