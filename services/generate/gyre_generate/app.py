"""Generate service wiring: the generation model and the GenerationRequested consumer."""

from __future__ import annotations

from typing import Any

from gyre_generate.handlers import GenerateHandler
from gyre_runtime.config import Settings
from gyre_runtime.generation import open_generator
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.models import ModelEntry, ModelRegistry


def create_app(settings: Settings) -> Any:
    service = Service("generate", settings)

    @service.on_start
    async def wire(svc: Service) -> None:
        generator = open_generator(settings)
        svc.state["generator"] = generator
        handler = GenerateHandler(
            generator=generator,
            publisher=svc.publisher,
            generations=GenerationStore(await svc.bus.kv("gyre_generations")),
            retrieve_timeout_s=settings.request_timeout_s,
        )
        svc.consume("generate", handler)
        await ModelRegistry(await svc.bus.kv("gyre_models")).register(
            ModelEntry(
                id=settings.generation_model, kind="generation", version=generator.version, served_by="generate"
            )
        )

    @service.on_stop
    async def close(svc: Service) -> None:
        if "generator" in svc.state:
            await svc.state["generator"].close()

    return service.asgi()


def main() -> None:
    run_service("generate", create_app)
