"""The model hub: model versions in the KV bucket ``gyre_models``, their files in the Object Store
``gyre_model_artifacts``, and per-role aliases (``generator@production``) with their whole history.

Reading (``versions``, ``resolve``, ``alias``, ``watch``, ``materialise``) is what services do: they
follow an alias and get its files from the bus, checksums verified, with no shared disk. Writing
(``push``, ``promote``, ``rollback``) is the operator's: the `gyre models` CLI.

An alias move is one compare-and-set on ``alias.<role>.<alias>`` (the key services watch), then the
move is written to ``history.<role>.<alias>.<sequence>``, one key per move, so no KV history depth
limits the audit trail. A move whose history write was lost (the process died in between) is written
by the next move, and ``history`` shows the current record in any case.

ModelPromoted: published by the process that moves the alias, on its own connection, to JetStream
(stream GYRE_IMPROVE, ``improve.model_promoted``), after the move, with the event id
``<role>.<alias>.<sequence>`` so that a repeated publish of one move is dropped as a duplicate. The
process is the `gyre models` CLI, connected as the operator (``admin``, who may publish anything),
so the event is the operator's, like ReindexRequested from `gyre reindex`; no service has the right
to publish it (SERVICE_ACCESS), because promoting is not a service's decision. Services do not wait
for the event: they watch the alias key, which has moved before the event is sent. A publish that
fails leaves the alias moved and its history written, and the error reaches the caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Self

import msgspec
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gyre_contracts import ModelPromoted, utc_now
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.hub import artifacts
from gyre_runtime.hub.records import (
    ALIASES_PATTERN,
    PRODUCTION,
    AliasRecord,
    ArtifactMismatch,
    HubError,
    Lineage,
    ModelVersion,
    NeedsReindex,
    NotFound,
    Role,
    alias_decoder,
    alias_key,
    check_alias,
    check_role,
    history_key,
    history_pattern,
    object_prefix,
    parse_ref,
    role_of,
    version_decoder,
    version_key,
    versions_pattern,
)
from gyre_runtime.models.manifest import MANIFEST_NAME, FileEntry, load_manifest, sha256_file, verify_manifest
from gyre_runtime.state import buckets
from gyre_runtime.state.kv_listing import current_values
from gyre_runtime.state.kv_store import create, read, retry_on_conflict, write

if TYPE_CHECKING:
    from gyre_runtime.bus.connection import Bus

REASON_MAX_CHARS = 1000  # ModelPromoted.reason is a ShortText


def _entry_file(path: Path) -> FileEntry:
    return FileEntry(sha256=sha256_file(path), size=path.stat().st_size)


class ModelHub:
    """Model versions, aliases and their history on the bus (see the module docstring)."""

    def __init__(self, kv: KeyValue, objects: ObjectStore, publisher: Publisher) -> None:
        self.kv = kv
        self.objects = objects
        self.publisher = publisher

    @classmethod
    async def open(cls, bus: Bus, *, source: str = "cli") -> Self:
        """The hub on ``bus``; ``source`` names the publisher of ModelPromoted (``gyre/<source>``)."""
        kv = await bus.kv(buckets.MODELS.name)
        objects = await bus.object_store(buckets.MODEL_ARTIFACTS.name)
        return cls(kv, objects, Publisher(bus, source))

    # -- reading ----------------------------------------------------------------------------------

    async def _values(self, pattern: str) -> list[bytes]:
        """The values of every key matching ``pattern`` (filtered by the server), deleted ones left out."""
        return [entry.value for entry in await current_values(self.kv, pattern) if entry.value]

    async def versions(self, name: str | None = None) -> list[ModelVersion]:
        """Every pushed version (of ``name``), oldest pushed first."""
        found = [version_decoder.decode(v) for v in await self._values(versions_pattern(name))]
        return sorted(found, key=lambda v: (v.pushed_at, v.id))

    async def _version(self, name: str, version_id: str) -> ModelVersion | None:
        return (await read(self.kv, version_key(name, version_id), version_decoder.decode)).value

    async def _names(self) -> str:
        names = sorted({v.name for v in await self.versions()})
        return ", ".join(names) or "none pushed yet (`gyre models push FOLDER`)"

    async def _role_versions(self, role: Role) -> str:
        ids = [v.id for v in await self.versions() if v.role == role]
        return ", ".join(ids) or "none pushed yet (`gyre models push FOLDER`)"

    async def resolve(self, ref: str) -> ModelVersion:
        """``name:version:hash12``, ``name`` (its newest pushed version) or ``role@alias``.

        NotFound names what exists: the models, the versions of the model, or the aliases.
        """
        parsed = parse_ref(ref)
        if parsed.role is not None and parsed.alias is not None:
            record = await self.alias(parsed.role, parsed.alias)
            if record is None:
                known = ", ".join(r.ref for r in await self.aliases()) or "none set yet (`gyre models promote`)"
                raise NotFound(f"no alias {parsed.role}@{parsed.alias}; aliases: {known}")
            return await self.resolve(record.version)
        assert parsed.name is not None
        if parsed.version_id is not None:
            version = await self._version(parsed.name, parsed.version_id)
            if version is not None:
                return version
            known = ", ".join(v.id for v in await self.versions(parsed.name))
            if known:
                raise NotFound(f"no version {parsed.version_id!r} of model {parsed.name!r}; versions: {known}")
        elif versions := await self.versions(parsed.name):
            return versions[-1]
        raise NotFound(f"no model {parsed.name!r} in the hub; models: {await self._names()}")

    async def alias(self, role: Role, alias: str) -> AliasRecord | None:
        return (await read(self.kv, alias_key(check_role(role), check_alias(alias)), alias_decoder.decode)).value

    async def aliases(self) -> list[AliasRecord]:
        records = [alias_decoder.decode(v) for v in await self._values(ALIASES_PATTERN)]
        return sorted(records, key=lambda r: (r.role, r.alias))

    async def history(self, role: Role, alias: str) -> list[AliasRecord]:
        """Every move of ``role@alias``, oldest first (the current record included even if its write was lost)."""
        current = await self.alias(role, alias)
        moves = {r.sequence: r for r in map(alias_decoder.decode, await self._values(history_pattern(role, alias)))}
        if current is not None:
            moves.setdefault(current.sequence, current)
        return [moves[sequence] for sequence in sorted(moves)]

    async def watch(self, role: Role, alias: str) -> AsyncIterator[AliasRecord]:
        """The current record of ``role@alias`` (if any), then every move, as the KV watch delivers them."""
        watcher = await self.kv.watch(alias_key(check_role(role), check_alias(alias)), ignore_deletes=True)
        try:
            async for entry in watcher:
                if entry is None or not entry.value:  # None: the end of the current value
                    continue
                yield alias_decoder.decode(entry.value)
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]

    async def check_artifacts(self, version: ModelVersion) -> None:
        """ArtifactMismatch unless every object of ``version`` holds the bytes its manifest lists."""
        problems = await artifacts.artifact_problems(self.objects, version)
        if problems:
            raise ArtifactMismatch(
                f"{version.id}: its files in the Object Store do not match its manifest ({'; '.join(problems)});"
                " push the model folder again"
            )

    async def materialise(self, version: ModelVersion, model_root: Path) -> Path:
        """A local folder holding exactly ``version``: ``<model_root>/<name>`` when it is that version,
        else ``<model_root>/hub/<name>-<hash12>``, pulled from the Object Store when not already there."""
        local = model_root / version.name
        if await asyncio.to_thread(artifacts.holds_version, local, version):
            return local
        target = model_root / "hub" / f"{version.name}-{version.id.rsplit(':', 1)[-1]}"
        if await asyncio.to_thread(artifacts.holds_version, target, version):
            return target
        await self.check_artifacts(version)
        return await artifacts.pull(self.objects, version, target)

    # -- writing ----------------------------------------------------------------------------------

    async def push(self, folder: Path, *, pushed_by: str, lineage: Lineage | None = None) -> ModelVersion:
        """Record the model in ``folder`` and upload its files; pushing the same folder again changes nothing
        (objects missing or damaged in the store are uploaded again)."""
        folder = Path(folder)
        problems = await asyncio.to_thread(verify_manifest, folder)  # hashes every file: seconds for a large model
        if problems:
            raise ArtifactMismatch(f"{folder} does not match its manifest: {'; '.join(problems)}")
        manifest = load_manifest(folder)
        prefix = object_prefix(manifest)
        files = [*sorted(manifest.files), MANIFEST_NAME]
        manifest_file = await asyncio.to_thread(_entry_file, folder / MANIFEST_NAME)
        candidate = ModelVersion(
            id=manifest.model_version, name=manifest.name, role=role_of(manifest), manifest=manifest,
            manifest_file=manifest_file, artifacts={rel: prefix + rel for rel in files},
            pushed_by=pushed_by,
            lineage=lineage or Lineage(base_model=manifest.source_package or None, recipe=manifest.recipe_hash or None),
            evaluation=dict(manifest.evaluation),
        )
        existing = await self._version(candidate.name, candidate.id)
        if existing is not None and (existing.digest, existing.manifest_file) != (
            candidate.digest, candidate.manifest_file,
        ):
            raise HubError(
                f"{candidate.id} is already in the hub with other files (digest {existing.digest[:12]}); "
                "give the new build another version"
            )
        version = existing or candidate
        await artifacts.upload(self.objects, folder, version)
        if existing is None and not await create(
            self.kv, version_key(version.name, version.id), msgspec.json.encode(version),
        ):
            version = await self.resolve(version.id)  # another push of the same folder got there first
        return version

    async def promote(
        self, role: Role, alias: str, ref: str, *, by: str, reason: str, evaluation: str | None = None,
        reindexed: bool = False,
    ) -> AliasRecord:
        """Point ``role@alias`` at ``ref``'s version, after checking its role, its files and (embedders) the index."""
        role, alias = check_role(role), check_alias(alias)
        try:
            version = await self.resolve(ref)
        except NotFound as exc:
            raise NotFound(f"{exc}; {role} versions: {await self._role_versions(role)}") from None

        async def chosen(current: AliasRecord | None) -> ModelVersion:
            return version

        return await self._move(role, alias, chosen, by=by, reason=reason, evaluation=evaluation,
                                reindexed=reindexed, rollback=False)

    async def rollback(
        self, role: Role, alias: str, *, by: str, reason: str, reindexed: bool = False,
    ) -> AliasRecord:
        """Point ``role@alias`` back at the version it held before the current one."""
        role, alias = check_role(role), check_alias(alias)

        async def previous(current: AliasRecord | None) -> ModelVersion:
            if current is None:
                known = ", ".join(r.ref for r in await self.aliases()) or "none set yet"
                raise NotFound(f"no alias {role}@{alias} to roll back; aliases: {known}")
            if current.previous is None:
                raise HubError(f"{role}@{alias} has had one version only ({current.version}): nothing to roll back to")
            return await self.resolve(current.previous)

        return await self._move(role, alias, previous, by=by, reason=reason, evaluation=None,
                                reindexed=reindexed, rollback=True)

    async def _admit(self, role: Role, alias: str, version: ModelVersion, current: AliasRecord | None,
                     reindexed: bool) -> None:
        """Refuse a move to ``version``: wrong role, files not matching, or an embedder change without a reindex."""
        if version.role != role:
            raise HubError(
                f"{version.id} has the role {version.role}, not {role}: it cannot be {role}@{alias} "
                f"({role} versions: {await self._role_versions(role)})"
            )
        await self.check_artifacts(version)
        if (role == "embedder" and alias == PRODUCTION and current is not None
                and current.version != version.id and not reindexed):
            raise NeedsReindex(
                f"embedder@production is {current.version}: the index holds its vectors, and {version.id} "
                f"embeds differently. Rebuild the index with it: run `gyre reindex --embedding-model "
                f"{version.name} --wait` (which moves embedder@production once search uses it; after a reindex "
                f"without --wait, promote again with --reindexed)"
            )

    async def _move(
        self, role: Role, alias: str, choose: Callable[[AliasRecord | None], Awaitable[ModelVersion]], *,
        by: str, reason: str, evaluation: str | None, reindexed: bool, rollback: bool,
    ) -> AliasRecord:
        """One alias move by compare-and-set; ``choose`` picks the version from the current record (on every retry)."""
        reason = reason.strip()
        if not reason or len(reason) > REASON_MAX_CHARS:
            raise HubError(f"give a reason for moving {role}@{alias} (1-{REASON_MAX_CHARS} characters)")
        key = alias_key(role, alias)

        async def attempt() -> tuple[AliasRecord, ModelVersion, bool]:
            current = await read(self.kv, key, alias_decoder.decode)
            version = await choose(current.value)
            if current.value is not None:
                await self._record(current.value)  # a move whose history write was lost
                if current.value.version == version.id:
                    return current.value, version, False  # already there: not a move
            await self._admit(role, alias, version, current.value, reindexed)
            record = AliasRecord(
                role=role, alias=alias, version=version.id,
                previous=current.value.version if current.value else None,
                moved_by=by, reason=reason, moved_at=utc_now(), evaluation=evaluation,
                sequence=current.value.sequence + 1 if current.value else 1,
                rollback=rollback, reindexed=reindexed,
            )
            await write(self.kv, key, msgspec.json.encode(record), current.revision)
            return record, version, True

        record, version, moved = await retry_on_conflict(attempt, what=f"alias {role}@{alias}", attempts=20)
        if moved:
            await self._record(record)
            await self._announce(record, version)
        return record

    async def _record(self, record: AliasRecord) -> None:
        """Write a move to the history (once: a key that exists already holds it)."""
        await create(self.kv, history_key(record.role, record.alias, record.sequence), msgspec.json.encode(record))

    async def _announce(self, record: AliasRecord, version: ModelVersion) -> None:
        event = ModelPromoted(
            name=version.name, version=version.id, alias=record.alias, role=record.role,
            previous=record.previous, reason=record.reason, by=record.moved_by, evaluation=record.evaluation,
            rollback=record.rollback, promoted_at=record.moved_at,
        )
        await self.publisher.publish(event, event_id=f"{record.role}.{record.alias}.{record.sequence}")

