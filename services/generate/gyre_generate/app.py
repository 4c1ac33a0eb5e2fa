"""Generate service wiring: model, prompt registry, the GenerationRequested consumer, cancel and load subjects."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from gyre_contracts import GenerationCancelRequested, GenerationLoadRequest
from gyre_generate.handlers import CancelHandler, GenerateHandler, LoadHandler
from gyre_generate.model_follow import ModelFollower, initial_model
from gyre_generate.retrieval import Retriever
from gyre_generate.running import RunningGenerations
from gyre_runtime.bus.topology import ConsumerSpec, consumers_of
from gyre_runtime.config import Settings
from gyre_runtime.generation import Generator, open_generator
from gyre_runtime.generation.swap import SwappableGenerator
from gyre_runtime.guardrails.blocked_terms import BlockedTerms
from gyre_runtime.hub import ModelHub
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from gyre_runtime.state.prompts import DEFAULT_TEMPLATE, PromptRegistry
from gyre_runtime.state.tenants import TenantPolicies

log = get_logger()

DURABLE = "generate"


def generate_consumer() -> ConsumerSpec:
    return next(spec for spec in consumers_of("generate") if spec.durable == DURABLE)


def create_app(settings: Settings, *, open_model: Callable[[Settings], Generator] = open_generator) -> Any:
    """The ASGI app (``app.state.service`` is the Service); ``open_model`` lets tests run another model."""
    service = Service("generate", settings)

    def follows_alias() -> bool:
        """In-process models follow the hub's alias; a test's own model (``open_model``) does not."""
        in_process = settings.generation_backend == "onnx"
        return open_model is open_generator and in_process and bool(settings.generation_alias)

    def open_folder(folder: Path) -> Generator:
        return open_generator(settings, folder)

    @service.on_start
    async def wire(svc: Service) -> None:
        models = await ModelRegistry.open(svc.bus)
        hub = serving = None
        if follows_alias():
            hub = await ModelHub.open(svc.bus, source="generate")
            model, serving = await initial_model(hub, settings, open_folder)
        else:
            model = open_model(settings)
        generator = SwappableGenerator(model)
        svc.state["generator"] = generator

        async def announce(current: Generator) -> None:
            await models.register(ModelEntry(
                id=settings.generation_model, kind="generation", version=current.version, served_by="generate"
            ))

        spec = generate_consumer()
        running = RunningGenerations(capacity=spec.concurrency)
        prompts = await PromptRegistry.open(svc.bus)
        if await prompts.seed(msgspec.structs.replace(DEFAULT_TEMPLATE, name=settings.prompt_name)):
            log.info("prompt_registry_seeded", prompt=settings.prompt_name)
        handler = GenerateHandler(
            generator=generator,
            publisher=svc.publisher,
            generations=await GenerationStore.open(svc.bus),
            prompts=prompts,
            tenants=await TenantPolicies.open(svc.bus),
            retriever=Retriever(svc.publisher, timeout_s=settings.request_timeout_s),
            running=running,
            prompt_name=settings.prompt_name,
            model_name=settings.generation_model,
            min_score=settings.retrieval_min_score,
            blocked=BlockedTerms.from_setting(settings.blocked_terms),
            max_input_tokens=settings.max_input_tokens,
            expire_after_s=settings.request_timeout_s,
        )
        svc.consume(DURABLE, handler)
        load = LoadHandler(
            running, svc.publisher, stream=svc.bus.stream_name(spec.stream), durable=spec.durable,
            replica=f"{socket.gethostname()}:{os.getpid()}",
        )
        # Every replica hears every cancel (no queue group); one replica answers each load question.
        svc.listen(f"{GenerationCancelRequested.subject}.*", CancelHandler(running).__call__)
        svc.respond(GenerationLoadRequest.subject, load.__call__)
        await announce(generator)
        if hub is not None:
            follower = ModelFollower(hub, generator, settings=settings, open_folder=open_folder, serving=serving,
                                     announce=announce)
            svc.state["follower"] = follower
            svc.state["follow_task"] = asyncio.get_running_loop().create_task(follower.run())

    @service.on_stop
    async def close(svc: Service) -> None:
        if "follow_task" in svc.state:
            svc.state["follow_task"].cancel()
        if "generator" in svc.state:
            await svc.state["generator"].close()

    return service.asgi()


def main() -> None:
    run_service("generate", create_app)
