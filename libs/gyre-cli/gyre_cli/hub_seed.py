"""`gyre up` registers the model store's default models in the hub, so a fresh machine runs offline as before.

`just models` builds the default models into the model store (no bus is running then); `gyre up`
pushes each of them to the hub (manifest in KV, files in the Object Store: idempotent, so a restart
uploads nothing new) and, on a bus where the alias is not set yet, points `generator@production`
and `embedder@production` at them. An alias already set is never moved here: a model promoted with
`gyre models promote` (or a reindex) stays the one served across restarts, and the log says so
when it differs from the settings' folder.
"""

from __future__ import annotations

from gyre_runtime.bus.connection import Bus
from gyre_runtime.config import Settings
from gyre_runtime.hub import ModelHub, Role
from gyre_runtime.logging import get_logger
from gyre_runtime.models.manifest import MANIFEST_NAME

log = get_logger()

PUSHED_BY = "gyre up"
ALIAS = "production"


async def register_default_models(bus: Bus, settings: Settings) -> list[str]:
    """Push the settings' model folders that are built; set an unset production alias. Lines for the banner."""
    hub = await ModelHub.open(bus, source="cli")
    lines: list[str] = []
    folders: tuple[tuple[Role, str, str], ...] = (
        ("embedder", settings.embedding_model, ALIAS),
        ("generator", settings.generation_model, settings.generation_alias or ALIAS),
    )
    for role, name, alias in folders:
        folder = settings.model_path / name
        if not (folder / MANIFEST_NAME).is_file():
            continue  # not built here (a remote backend, a test without models): nothing to register
        version = await hub.push(folder, pushed_by=PUSHED_BY)
        current = await hub.alias(role, alias)
        if current is None:
            await hub.promote(role, alias, version.id, by=PUSHED_BY, reindexed=True,
                              reason="first start on this bus: the model store's default")
            lines.append(f"{role}@{alias} -> {version.id}")
        elif current.version != version.id:
            log.info("hub_alias_kept", alias=f"{role}@{alias}", serving=current.version, settings_folder=version.id)
            lines.append(f"{role}@{alias} -> {current.version} (kept; the settings name {version.id})")
        else:
            lines.append(f"{role}@{alias} -> {version.id}")
    return lines
