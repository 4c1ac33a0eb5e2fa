"""generate serves `generator@<alias>` from the model hub and follows it: a promotion swaps the model in place.

At start the alias (``GYRE_GENERATION_ALIAS``, default ``production``) decides which model version
runs: the hub's version is made local (the model store's own folder when it holds exactly that
version, else pulled from the Object Store into ``<model store>/hub/``, or ``<data dir>/models-pulled/hub/``
when the store is mounted read-only; checksums verified). When
the hub has no such alias yet (a fresh bus before `gyre up` or `gyre models promote` set it), the
folder ``GYRE_GENERATION_MODEL`` names is served, as before the hub.

Then a KV watch on the alias follows each move: the new version is loaded beside the old one (off
the event loop), becomes current for every request that starts after it, and the old model closes
once the answers still running on it end (gyre_runtime.generation.swap). A version that cannot be
loaded leaves the current one serving, logged with the reason; the next move is tried as usual.
Only in-process models follow an alias: a Triton or OpenAI-compatible backend serves what its
server serves.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from gyre_runtime.config import Settings
from gyre_runtime.generation import Generator
from gyre_runtime.generation.swap import SwappableGenerator
from gyre_runtime.hub import AliasRecord, HubError, ModelHub, ModelVersion
from gyre_runtime.logging import get_logger

log = get_logger()

OpenFolder = Callable[[Path], Generator]
Announce = Callable[[Generator], Awaitable[None]]

RETRY_WATCH_S = 2.0


async def local_folder(hub: ModelHub, version: ModelVersion, settings: Settings) -> Path:
    """``version`` on this machine: from the model store, or pulled into it; into ``<data dir>/models-pulled``
    when the store is read-only (a deployment that mounts the built models, as compose does)."""
    store = settings.model_path
    if os.access(store, os.W_OK) or (store / version.name / "manifest.json").is_file():
        try:
            return await hub.materialise(version, store)
        except PermissionError:
            pass
    pulled = settings.data_path / "models-pulled"
    pulled.mkdir(parents=True, exist_ok=True)
    return await hub.materialise(version, pulled)


async def initial_model(hub: ModelHub, settings: Settings, open_folder: OpenFolder) -> tuple[Generator, str | None]:
    """The model the alias names (and that version's id), or the settings' folder when the alias is unset."""
    record = await hub.alias("generator", settings.generation_alias)
    if record is None:
        log.info("generation_alias_unset", alias=settings.generation_alias, serving=settings.generation_model)
        return await asyncio.to_thread(open_folder, settings.model_path / settings.generation_model), None
    version = await hub.resolve(record.version)
    folder = await local_folder(hub, version, settings)
    return await asyncio.to_thread(open_folder, folder), version.id


class ModelFollower:
    """Swaps the served model whenever ``generator@<alias>`` moves; runs until cancelled."""

    def __init__(
        self, hub: ModelHub, generator: SwappableGenerator, *, settings: Settings, open_folder: OpenFolder,
        serving: str | None, announce: Announce,
    ) -> None:
        self.hub = hub
        self.generator = generator
        self.settings = settings
        self.open_folder = open_folder
        self.serving = serving  # the hub version id being served (None: the settings' folder)
        self.announce = announce
        self.swaps = 0

    async def run(self) -> None:
        alias = self.settings.generation_alias
        while True:
            try:
                async for record in self.hub.watch("generator", alias):
                    await self.follow(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the bus went away: watch again once it is back
                log.warning("generation_alias_watch_lost", alias=alias, error=str(exc)[:300])
            await asyncio.sleep(RETRY_WATCH_S)

    async def follow(self, record: AliasRecord) -> None:
        """Serve ``record.version`` unless it is already served; a failure keeps the current model."""
        if record.version == self.serving:
            return
        try:
            version = await self.hub.resolve(record.version)
            folder = await local_folder(self.hub, version, self.settings)
            model = await asyncio.to_thread(self.open_folder, folder)
        except (HubError, OSError, RuntimeError, ValueError) as exc:
            log.error("model_swap_failed", alias=f"generator@{record.alias}", version=record.version,
                      serving=self.generator.version, error=str(exc)[:500])
            return
        previous = self.generator.version
        self.generator.swap(model)
        self.serving = version.id
        self.swaps += 1
        log.info("model_swapped", alias=f"generator@{record.alias}", version=version.id, previous=previous,
                 reason=record.reason, by=record.moved_by)
        await self.announce(model)
