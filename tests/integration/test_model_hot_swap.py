"""generate follows `generator@production` on a real nats-server with the real model.

A promotion swaps the model (fetched from the bus: this replica's model store lacks it) with no
request dropped (the answer in flight finishes on the old version), a rollback swaps back, and a
version whose files are damaged is refused without moving the alias or the served model."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from gyre_contracts import (
    ChatMessage,
    GenerationCompleted,
    GenerationFailed,
    GenerationRequested,
    SamplingParams,
    TokenDelta,
    decode_event,
    new_id,
)
from gyre_generate.app import create_app
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from gyre_runtime.hub import ArtifactMismatch, ModelHub
from gyre_runtime.service import Service
from gyre_runtime.state.prompts import LEGACY_TEMPLATE, PromptRegistry
from tests.support.model_folders import renamed_copy
from tests.support.models import GENERATOR, built_models

pytestmark = pytest.mark.models


@pytest.fixture
async def hub_with_two_versions(settings: Settings, bus: Bus, tmp_path: Path) -> tuple[ModelHub, str, str]:
    store = tmp_path / "models"
    store.mkdir()
    shutil.copytree(built_models(GENERATOR) / GENERATOR, store / GENERATOR)
    renamed_copy(store / GENERATOR, store / "smollm2-copy", "smollm2-copy")
    hub = await ModelHub.open(bus)
    first = await hub.push(store / GENERATOR, pushed_by="test")
    second = await hub.push(store / "smollm2-copy", pushed_by="test")
    # As on a replica of another machine: the second version is only on the bus.
    shutil.rmtree(store / "smollm2-copy")
    await hub.promote("generator", "production", first.id, by="test", reason="start")
    return hub, first.id, second.id


@pytest.fixture
async def generate(
    settings: Settings, bus: Bus, tmp_path: Path, hub_with_two_versions: object
) -> AsyncIterator[Service]:
    settings = msgspec.structs.replace(
        settings, model_dir=str(tmp_path / "models"), generation_alias="production", onnx_threads=2,
    )
    await PromptRegistry(await bus.kv("gyre_prompts")).seed(LEGACY_TEMPLATE)  # streams the model's text as it comes
    service: Service = create_app(settings).state.service
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def ask(bus: Bus, question: str, max_tokens: int, first_token: asyncio.Event | None = None) -> tuple[
    GenerationCompleted | GenerationFailed, str
]:
    request_id = f"chatcmpl-{new_id()}"
    sub = await bus.nc.subscribe(bus.subject(f"generate.stream.{request_id}"))
    event = GenerationRequested(
        tenant="tenant-a", request_id=request_id, messages=(ChatMessage(role="user", content=question),),
        params=SamplingParams(max_tokens=max_tokens, temperature=0.0), retrieval=False,
    )
    await Publisher(bus, "gateway").publish(event, event_id=request_id)
    text = ""
    while True:
        msg = await sub.next_msg(timeout=120)
        message = decode_event(msg.data, TokenDelta | GenerationCompleted | GenerationFailed, dict(msg.headers or {}))
        if isinstance(message, TokenDelta):
            text += message.text
            if first_token is not None:
                first_token.set()
            continue
        await sub.unsubscribe()
        return message, text


def served(service: Service) -> str:
    version: str = service.state["generator"].version
    return version


async def wait_for_version(service: Service, version_id: str, timeout_s: float = 60) -> None:
    """Until the follower has swapped (it loads the new model off the event loop, so this takes a moment)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while served(service) != version_id:
        assert asyncio.get_running_loop().time() < deadline, f"still serving {served(service)}"
        await asyncio.sleep(0.05)


async def test_a_promotion_swaps_the_model_and_the_answer_in_flight_finishes_on_the_old_one(
    generate: Service, bus: Bus, hub_with_two_versions: tuple[ModelHub, str, str], tmp_path: Path
) -> None:
    hub, first, second = hub_with_two_versions
    assert served(generate) == first
    started = asyncio.Event()
    long_answer = asyncio.create_task(ask(bus, "Write a long story about a lighthouse keeper.", 160, started))
    await asyncio.wait_for(started.wait(), 60)
    await hub.promote("generator", "production", second, by="test", reason="hot swap under load")
    await wait_for_version(generate, second)
    after, _ = await ask(bus, "What is the capital of France?", 24)
    before, text = await long_answer
    assert isinstance(before, GenerationCompleted), before
    assert before.model_version == first and before.finish_reason == "length"  # not cut by the swap
    assert before.usage.completion_tokens == 160 and len(text) > 200
    assert isinstance(after, GenerationCompleted) and after.model_version == second
    pulled = tmp_path / "models" / "hub" / f"smollm2-copy-{second.rsplit(':', 1)[-1]}"
    assert (pulled / "manifest.json").is_file()  # fetched from the Object Store, checksums verified
    assert "Paris" in after.answer
    await hub.rollback("generator", "production", by="test", reason="back")
    await wait_for_version(generate, first)
    again, _ = await ask(bus, "What is the capital of France?", 24)
    assert isinstance(again, GenerationCompleted) and again.model_version == first
    assert [r.version for r in await hub.history("generator", "production")] == [first, second, first]


async def test_a_damaged_version_is_refused_and_the_served_model_stays(
    generate: Service, bus: Bus, hub_with_two_versions: tuple[ModelHub, str, str]
) -> None:
    hub, first, second = hub_with_two_versions
    version = await hub.resolve(second)
    name = version.artifacts[version.manifest.file]
    await hub.objects.put(name, b"not the weights")
    with pytest.raises(ArtifactMismatch):
        await hub.promote("generator", "production", second, by="test", reason="damaged")
    record = await hub.alias("generator", "production")
    assert record is not None and record.version == first
    answer, _ = await ask(bus, "What is the capital of France?", 24)
    assert isinstance(answer, GenerationCompleted) and answer.model_version == first
