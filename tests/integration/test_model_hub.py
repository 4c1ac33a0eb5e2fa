"""The model hub on a real nats-server: push and pull through the Object Store, aliases, history, events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from gyre_contracts import ModelPromoted, decode_event
from gyre_runtime.bus.connection import Bus
from gyre_runtime.hub import ArtifactMismatch, HubError, ModelHub, ModelVersion, NeedsReindex, NotFound
from gyre_runtime.models.manifest import MANIFEST_NAME
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from tests.support.model_folders import write_model_folder

GENERATOR, EMBEDDER = "tiny-generator", "tiny-embedder"


@pytest.fixture
async def hub(bus: Bus) -> ModelHub:
    return await ModelHub.open(bus)


async def push_fake(hub: ModelHub, root: Path, *, name: str = GENERATOR, kind: str = "generation",
                    weights: bytes = b"weights 1") -> ModelVersion:
    folder = root / f"{name}-{weights.hex()[:8]}"
    write_model_folder(folder, name=name, kind=kind, weights=weights)
    return await hub.push(folder, pushed_by="tester")


@contextlib.asynccontextmanager
async def promotions(bus: Bus) -> AsyncIterator[list[ModelPromoted]]:
    """The ModelPromoted events published while the block runs."""
    seen: list[ModelPromoted] = []

    async def on_event(msg: Msg) -> None:
        seen.append(decode_event(msg.data, ModelPromoted, dict(msg.headers or {})))

    sub = await bus.nc.subscribe(bus.subject(ModelPromoted.subject), cb=on_event)
    try:
        yield seen
        await bus.nc.flush()
    finally:
        await sub.unsubscribe()


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- push and pull ----------------------------------------------------------------------------------


async def test_a_pushed_folder_is_pulled_elsewhere_byte_for_byte(hub: ModelHub, tmp_path: Path) -> None:
    version = await push_fake(hub, tmp_path / "built")
    assert version.role == "generator" and version.pushed_by == "tester"
    assert version.lineage.base_model == f"{GENERATOR}-source" and version.evaluation == {"check": 0.99}
    pulled = await hub.materialise(version, tmp_path / "replica")
    assert pulled == tmp_path / "replica" / "hub" / f"{GENERATOR}-{version.id.rsplit(':', 1)[1]}"
    assert files_of(pulled) == files_of(tmp_path / "built" / f"{GENERATOR}-{b'weights 1'.hex()[:8]}")
    assert [p.name for p in (tmp_path / "replica" / "hub").iterdir()] == [pulled.name]  # no staging left
    # Already there: nothing is downloaded again (a file removed from the store would otherwise fail it).
    assert await hub.materialise(version, tmp_path / "replica") == pulled


async def test_the_model_root_own_folder_is_used_when_it_is_that_version(hub: ModelHub, tmp_path: Path) -> None:
    root = tmp_path / "models"
    write_model_folder(root / GENERATOR)
    version = await hub.push(root / GENERATOR, pushed_by="tester")
    assert await hub.materialise(version, root) == root / GENERATOR
    newer = await push_fake(hub, tmp_path / "built", weights=b"weights 2")
    assert (await hub.materialise(newer, root)).parent == root / "hub"


async def test_pushing_the_same_folder_twice_records_and_uploads_it_once(hub: ModelHub, tmp_path: Path) -> None:
    first = await push_fake(hub, tmp_path)
    infos = {rel: await hub.objects.get_info(name) for rel, name in first.artifacts.items()}
    again = await push_fake(hub, tmp_path)
    assert again == first
    assert [v.id for v in await hub.versions()] == [first.id]
    for rel, name in first.artifacts.items():
        assert (await hub.objects.get_info(name)).nuid == infos[rel].nuid, rel


async def test_a_folder_that_does_not_match_its_manifest_is_not_pushed(hub: ModelHub, tmp_path: Path) -> None:
    write_model_folder(tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").write_bytes(b'{"vocab": ["c", "d"]}')
    with pytest.raises(ArtifactMismatch, match=r"tokenizer\.json: sha256 differs"):
        await hub.push(tmp_path / "m", pushed_by="tester")
    assert await hub.versions() == []


async def test_a_corrupt_artifact_is_refused_by_pull_and_promote_and_the_alias_stays(
    hub: ModelHub, tmp_path: Path,
) -> None:
    good = await push_fake(hub, tmp_path)
    bad = await push_fake(hub, tmp_path, weights=b"weights 2")
    await hub.promote("generator", "production", good.id, by="ops", reason="first")
    await hub.objects.put(bad.artifacts["model.onnx"], b"weights 3")  # same size, other bytes
    with pytest.raises(ArtifactMismatch, match=r"model\.onnx: object .* another sha256"):
        await hub.promote("generator", "production", bad.id, by="ops", reason="newer")
    with pytest.raises(ArtifactMismatch, match="push the model folder again"):
        await hub.materialise(bad, tmp_path / "replica")
    assert not (tmp_path / "replica" / "hub").exists() or not any((tmp_path / "replica" / "hub").iterdir())
    current = await hub.alias("generator", "production")
    assert current is not None and current.version == good.id
    assert [r.version for r in await hub.history("generator", "production")] == [good.id]
    # Pushing the folder again repairs the store; then the promotion goes through.
    await hub.push(tmp_path / f"{GENERATOR}-{b'weights 2'.hex()[:8]}", pushed_by="tester")
    assert (await hub.promote("generator", "production", bad.id, by="ops", reason="repaired")).version == bad.id


# -- aliases and their history ----------------------------------------------------------------------


async def test_promote_and_rollback_keep_every_move_in_order_and_announce_each(
    hub: ModelHub, bus: Bus, tmp_path: Path,
) -> None:
    v1 = await push_fake(hub, tmp_path, weights=b"weights 1")
    v2 = await push_fake(hub, tmp_path, weights=b"weights 2")
    async with promotions(bus) as events:
        await hub.promote("generator", "candidate", v2.id, by="ci", reason="built", evaluation="eval-7")
        await hub.promote("generator", "production", v1.id, by="ops", reason="first release")
        moved = await hub.promote("generator", "production", "generator@candidate", by="ops", reason="eval-7 won",
                                  evaluation="eval-7")
        same = await hub.promote("generator", "production", v2.id, by="ops", reason="again")
        back = await hub.rollback("generator", "production", by="oncall", reason="answers got worse")
    assert same == moved  # already there: not a move
    assert (back.version, back.previous, back.rollback, back.sequence) == (v1.id, v2.id, True, 3)
    history = await hub.history("generator", "production")
    assert [(r.sequence, r.version, r.previous, r.moved_by, r.reason) for r in history] == [
        (1, v1.id, None, "ops", "first release"),
        (2, v2.id, v1.id, "ops", "eval-7 won"),
        (3, v1.id, v2.id, "oncall", "answers got worse"),
    ]
    assert history[1].evaluation == "eval-7" and history[0].moved_at <= history[1].moved_at <= history[2].moved_at
    assert (await hub.resolve("generator@production")).id == v1.id
    assert [r.ref for r in await hub.aliases()] == ["generator@candidate", "generator@production"]
    assert [(e.alias, e.version, e.previous, e.role, e.rollback) for e in events] == [
        ("candidate", v2.id, None, "generator", False),
        ("production", v1.id, None, "generator", False),
        ("production", v2.id, v1.id, "generator", False),
        ("production", v1.id, v2.id, "generator", True),
    ]
    assert events[2].name == GENERATOR and events[2].by == "ops" and events[2].evaluation == "eval-7"
    assert events[3].reason == "answers got worse"


async def test_the_history_outlives_the_bucket_history_depth(hub: ModelHub, tmp_path: Path) -> None:
    versions = [await push_fake(hub, tmp_path, weights=f"weights {n}".encode()) for n in range(3)]
    for n in range(12):
        await hub.promote("generator", "candidate", versions[n % 3].id, by="ci", reason=f"move {n}")
    assert [r.reason for r in await hub.history("generator", "candidate")] == [f"move {n}" for n in range(12)]


async def test_rolling_back_an_alias_with_one_version_is_refused(hub: ModelHub, tmp_path: Path) -> None:
    version = await push_fake(hub, tmp_path)
    with pytest.raises(NotFound, match="no alias generator@production to roll back; aliases: none"):
        await hub.rollback("generator", "production", by="ops", reason="oops")
    await hub.promote("generator", "production", version.id, by="ops", reason="first")
    with pytest.raises(HubError, match="one version only"):
        await hub.rollback("generator", "production", by="ops", reason="oops")


async def test_another_embedder_in_production_needs_a_reindex_first(hub: ModelHub, tmp_path: Path) -> None:
    e1 = await push_fake(hub, tmp_path, name=EMBEDDER, kind="embedding", weights=b"e1")
    e2 = await push_fake(hub, tmp_path, name=EMBEDDER, kind="embedding", weights=b"e2")
    await hub.promote("embedder", "production", e1.id, by="ops", reason="first")
    with pytest.raises(NeedsReindex, match=f"run `gyre reindex --embedding-model {EMBEDDER} --wait`"):
        await hub.promote("embedder", "production", e2.id, by="ops", reason="newer")
    assert (await hub.resolve("embedder@production")).id == e1.id
    assert (await hub.promote("embedder", "candidate", e2.id, by="ops", reason="to try")).version == e2.id
    moved = await hub.promote("embedder", "production", e2.id, by="ops", reason="reindexed", reindexed=True)
    assert moved.version == e2.id and moved.reindexed
    with pytest.raises(NeedsReindex):
        await hub.rollback("embedder", "production", by="ops", reason="back")


async def test_a_version_of_the_other_role_cannot_take_an_alias(hub: ModelHub, tmp_path: Path) -> None:
    embedder = await push_fake(hub, tmp_path, name=EMBEDDER, kind="embedding")
    generator = await push_fake(hub, tmp_path)
    with pytest.raises(HubError, match=f"has the role embedder, not generator.*generator versions: {generator.id}"):
        await hub.promote("generator", "production", embedder.id, by="ops", reason="wrong")
    assert await hub.aliases() == []


async def test_unknown_models_versions_and_aliases_name_what_exists(hub: ModelHub, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no model 'nope' in the hub; models: none pushed yet"):
        await hub.resolve("nope")
    version = await push_fake(hub, tmp_path)
    with pytest.raises(NotFound, match=f"no model 'nope' in the hub; models: {GENERATOR}$"):
        await hub.resolve("nope")
    with pytest.raises(NotFound, match=f"no version '{GENERATOR}:9:000000000000'.*versions: {version.id}"):
        await hub.resolve(f"{GENERATOR}:9:000000000000")
    with pytest.raises(NotFound, match="no alias generator@production; aliases: none set yet"):
        await hub.resolve("generator@production")
    with pytest.raises(NotFound, match=f"generator versions: {version.id}"):
        await hub.promote("generator", "production", "nope", by="ops", reason="x")
    assert (await hub.resolve(GENERATOR)).id == version.id


async def test_a_watch_sees_the_current_record_then_each_promotion(hub: ModelHub, tmp_path: Path) -> None:
    v1 = await push_fake(hub, tmp_path, weights=b"weights 1")
    v2 = await push_fake(hub, tmp_path, weights=b"weights 2")
    await hub.promote("generator", "production", v1.id, by="ops", reason="first")
    watch = hub.watch("generator", "production")
    try:
        current = await asyncio.wait_for(anext(watch), 5)
        assert current.version == v1.id
        await hub.promote("generator", "production", v2.id, by="ops", reason="second")
        moved = await asyncio.wait_for(anext(watch), 5)
        assert (moved.version, moved.previous, moved.sequence) == (v2.id, v1.id, 2)
    finally:
        await watch.aclose()


async def test_the_served_models_share_the_bucket_without_mixing_with_the_hub(
    hub: ModelHub, bus: Bus, tmp_path: Path,
) -> None:
    await push_fake(hub, tmp_path)
    registry = await ModelRegistry.open(bus)
    entry = ModelEntry(id=GENERATOR, kind="generation", version=f"{GENERATOR}:1:0123456789ab", served_by="generate")
    await registry.register(entry)
    assert [e.id for e in await registry.list()] == [GENERATOR]
    found = await registry.get(GENERATOR)
    assert found is not None and found.version == entry.version
    assert await registry.get("other") is None
    assert [v.name for v in await hub.versions()] == [GENERATOR]


async def test_a_pull_writes_the_manifest_as_pushed(hub: ModelHub, tmp_path: Path) -> None:
    version = await push_fake(hub, tmp_path)
    pulled = await hub.materialise(version, tmp_path / "replica")
    source = tmp_path / f"{GENERATOR}-{b'weights 1'.hex()[:8]}"
    assert (pulled / MANIFEST_NAME).read_bytes() == (source / MANIFEST_NAME).read_bytes()
