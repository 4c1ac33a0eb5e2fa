"""A completed `gyre reindex --wait` is what moves `embedder@production` (real nats-server, the hub, the CLI's step)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gyre_cli.reindex_command import move_embedder_alias
from gyre_contracts import ReindexCompleted
from gyre_runtime.bus.connection import Bus
from gyre_runtime.hub import ModelHub, NeedsReindex
from tests.support.model_folders import write_model_folder
from tests.support.nats_server import NatsServer


def completed(model_version: str) -> ReindexCompleted:
    return ReindexCompleted(
        tenant="default", request_id="reindex-1", collection="gyre_chunks_new", previous_collection="gyre_chunks",
        embedding_model=model_version, documents=3, points=9, previous_points=9, replayed_events=3,
        skipped_events=0, duration_ms=1200.0,
    )


async def test_the_switch_moves_the_alias_and_a_promotion_alone_is_refused(
    bus: Bus, nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "models"
    old = write_model_folder(store / "embedder-a", name="embedder-a", kind="embedding", weights=b"a")
    new = write_model_folder(store / "embedder-b", name="embedder-b", kind="embedding", weights=b"b")
    hub = await ModelHub.open(bus)
    await hub.push(store / "embedder-a", pushed_by="test")
    await hub.promote("embedder", "production", old.model_version, by="test", reason="first", reindexed=True)
    # The new embedder is not in the hub yet: the step pushes it from the model store, as `just models` built it.
    monkeypatch.setenv("GYRE_NATS_URL", nats_server.url)
    monkeypatch.setenv("GYRE_MODEL_DIR", str(store))
    monkeypatch.setenv("GYRE_DATA_DIR", str(tmp_path / "data"))
    # As embed names the model it runs: by its main file's checksum, not the hub's folder digest.
    served = f"embedder-b:1:{new.sha256[:12]}"
    assert served != new.model_version
    line = await move_embedder_alias(completed(served))
    assert line == f"embedder@production -> {new.model_version}"
    history = await hub.history("embedder", "production")
    assert [r.version for r in history] == [old.model_version, new.model_version]
    assert history[-1].reindexed and "gyre_chunks_new serves search" in history[-1].reason
    with pytest.raises(NeedsReindex, match="gyre reindex --embedding-model"):  # a promotion alone is refused
        await hub.promote("embedder", "production", old.model_version, by="test", reason="no reindex")
    current = await hub.alias("embedder", "production")
    assert current is not None and current.version == new.model_version

async def test_a_switch_to_a_model_the_store_does_not_hold_leaves_the_alias(
    bus: Bus, nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "models"
    write_model_folder(store / "embedder-a", name="embedder-a", kind="embedding", weights=b"other bytes")
    monkeypatch.setenv("GYRE_NATS_URL", nats_server.url)
    monkeypatch.setenv("GYRE_MODEL_DIR", str(store))
    monkeypatch.setenv("GYRE_DATA_DIR", str(tmp_path / "data"))
    line = await move_embedder_alias(completed("embedder-a:1:000000000000"))
    assert line.startswith("embedder@production not moved")
    assert await (await ModelHub.open(bus)).alias("embedder", "production") is None
