"""Where evaluation state lives: golden sets (Object Store), runs and their scored items (KV + Object Store).

- Golden sets: Object Store ``gyre_golden_sets``, one object per version, ``<tenant>/<set>/<version>.jsonl``
  (versions count up from 1; a set is never changed in place). Putting the same items as the latest
  version again returns that version instead of writing a copy.
- Runs: KV ``gyre_evaluations``, key ``run.<id>`` (status, progress, metrics, verdict), and one key per
  scored item, ``item.<id>.<n>``, written as each item finishes: a replica that takes over a run after
  a restart skips what is already scored. When a run ends its rows go to the Object Store
  ``gyre_evaluations`` as ``<id>/results.jsonl`` with the report, ``<id>/report.md``, and the KV item
  keys are purged.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any, Literal, Self

import msgspec
from nats.js.errors import KeyNotFoundError, NotFoundError, ObjectNotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gyre_contracts import EvaluationRequested
from gyre_runtime.state import buckets
from gyre_runtime.state.golden_sets import (
    GoldenItem,
    GoldenSetError,
    dump_golden_jsonl,
    parse_golden_jsonl,
    set_checksum,
)
from gyre_runtime.state.kv_listing import current_values
from gyre_runtime.state.kv_store import KvStore, create, read

if TYPE_CHECKING:
    from gyre_runtime.bus.connection import Bus

_SET_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TENANT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UnknownName(LookupError):
    """A set, version, run or label that does not exist; the message names those that do."""


class GoldenSetInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    versions: tuple[int, ...]
    latest: int
    items: int  # of the latest version
    checksum: str  # of the latest version


def set_object(tenant: str, name: str, version: int) -> str:
    return f"{tenant}/{name}/{version:06d}.jsonl"


def check_set_name(name: str) -> str:
    if not _SET_NAME.match(name):
        raise GoldenSetError(0, f"invalid set name {name!r}: use 1-64 letters, digits, '-' or '_'")
    return name


class GoldenSetStore:
    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @classmethod
    async def open(cls, bus: Bus) -> Self:
        """The store on ``bus`` (which opens the Object Store once and keeps the handle)."""
        return cls(await bus.object_store(buckets.GOLDEN_SETS.name))

    async def _objects(self, tenant: str) -> dict[str, dict[int, str]]:
        """``{set: {version: object name}}`` of a tenant."""
        try:
            infos = await self.store.list(ignore_deletes=True)
        except NotFoundError:  # an empty store
            return {}
        sets: dict[str, dict[int, str]] = {}
        prefix = f"{tenant}/"
        for info in infos:
            if not info.name.startswith(prefix) or info.deleted:
                continue
            parts = info.name[len(prefix) :].split("/")
            if len(parts) == 2 and parts[1].endswith(".jsonl") and parts[1][:-6].isdigit():
                sets.setdefault(parts[0], {})[int(parts[1][:-6])] = info.name
        return sets

    async def infos(self, tenant: str) -> list[GoldenSetInfo]:
        out = []
        for name, versions in sorted((await self._objects(tenant)).items()):
            latest = max(versions)
            items = await self._read(versions[latest])
            out.append(
                GoldenSetInfo(
                    name=name, versions=tuple(sorted(versions)), latest=latest, items=len(items),
                    checksum=set_checksum(items),
                )
            )
        return out

    async def _read(self, object_name: str) -> list[GoldenItem]:
        result = await self.store.get(object_name)
        return parse_golden_jsonl(result.data or b"")

    async def get(self, tenant: str, name: str, version: int = 0) -> tuple[int, list[GoldenItem]]:
        """The items of ``name`` at ``version`` (0: the latest); UnknownName says what exists."""
        sets = await self._objects(tenant)
        if name not in sets:
            known = ", ".join(sorted(sets)) or "none"
            raise UnknownName(f"unknown golden set {name!r} (sets of tenant {tenant!r}: {known})")
        versions = sets[name]
        chosen = version or max(versions)
        if chosen not in versions:
            known = ", ".join(str(v) for v in sorted(versions))
            raise UnknownName(f"golden set {name!r} has no version {version} (versions: {known})")
        return chosen, await self._read(versions[chosen])

    async def put(self, tenant: str, name: str, items: list[GoldenItem]) -> tuple[int, bool]:
        """Store ``items`` as the next version of ``name``; (version, created). Same items as the latest: no copy."""
        check_set_name(name)
        if not _TENANT.match(tenant):
            raise GoldenSetError(0, f"invalid tenant {tenant!r}")
        if not items:
            raise GoldenSetError(0, "a golden set needs at least one item")
        versions = (await self._objects(tenant)).get(name, {})
        if versions:
            latest = max(versions)
            if set_checksum(await self._read(versions[latest])) == set_checksum(items):
                return latest, False
        version = max(versions, default=0) + 1
        await self.store.put(set_object(tenant, name, version), dump_golden_jsonl(items))
        return version, True


# -- runs ------------------------------------------------------------------------------------------

RunStatus = Literal["queued", "running", "completed", "failed"]


class EvaluationRun(msgspec.Struct, kw_only=True):
    """One evaluation, as ``GET /v1/evaluations/{id}`` shows it."""

    id: str
    tenant: str
    set_name: str
    set_version: int = 0
    status: RunStatus = "queued"
    reason: str = ""
    done: int = 0
    total: int = 0
    errors: int = 0
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    baseline: str = ""
    passed: bool | None = None
    gate_failures: list[str] = msgspec.field(default_factory=list)
    comparison: list[dict[str, Any]] = msgspec.field(default_factory=list)
    settings: dict[str, Any] = msgspec.field(default_factory=dict)  # the overrides asked for
    prompt_version: str = ""
    model_version: str = ""
    results_object: str = ""
    report_object: str = ""
    chart_object: str = ""
    attempts: int = 0  # deliveries of its request: more than 1 means it resumed after a restart
    created_at: dt.datetime = msgspec.field(default_factory=_now)
    updated_at: dt.datetime = msgspec.field(default_factory=_now)


def run_key(evaluation_id: str) -> str:
    return f"run.{evaluation_id}"


def item_key(evaluation_id: str, index: int) -> str:
    return f"item.{evaluation_id}.{index:06d}"


def new_run(event: EvaluationRequested) -> EvaluationRun:
    settings: dict[str, Any] = {}
    if event.prompt_label:
        settings["prompt_label"] = event.prompt_label
    if event.model:
        settings["model"] = event.model
    if event.retrieval is not None:
        settings["retrieval"] = msgspec.to_builtins(event.retrieval)
    if event.sampling is not None:
        settings["sampling"] = msgspec.to_builtins(event.sampling)
    return EvaluationRun(
        id=event.evaluation_id, tenant=event.tenant, set_name=event.set_name, set_version=event.set_version,
        baseline=event.baseline, settings=settings,
    )


_run_decoder = msgspec.json.Decoder(EvaluationRun)


class EvaluationStore(KvStore):
    """Runs in the KV bucket, their results in the Object Store of the same name."""

    bucket = buckets.EVALUATIONS

    def __init__(self, kv: KeyValue, objects: ObjectStore) -> None:
        super().__init__(kv)
        self.objects = objects

    @classmethod
    async def open(cls, bus: Bus) -> Self:
        return cls(await bus.kv(cls.bucket.name), await bus.object_store(buckets.EVALUATION_RESULTS.name))

    async def get(self, evaluation_id: str) -> EvaluationRun | None:
        return (await read(self.kv, run_key(evaluation_id), _run_decoder.decode)).value

    async def require(self, evaluation_id: str, tenant: str) -> EvaluationRun:
        run = await self.get(evaluation_id)
        if run is None or run.tenant != tenant:  # another tenant's run does not exist for this one
            raise UnknownName(f"unknown evaluation {evaluation_id!r}")
        return run

    async def save(self, run: EvaluationRun) -> None:
        run.updated_at = _now()
        await self.kv.put(run_key(run.id), msgspec.json.encode(run))

    async def create(self, run: EvaluationRun) -> bool:
        """Store a new run; False when one with its id exists (a repeated request)."""
        return await create(self.kv, run_key(run.id), msgspec.json.encode(run))

    async def put_item(self, evaluation_id: str, index: int, row: dict[str, Any]) -> None:
        await self.kv.put(item_key(evaluation_id, index), msgspec.json.encode(row))

    async def items(self, evaluation_id: str) -> dict[int, dict[str, Any]]:
        """Rows scored so far, by item index."""
        return {
            int(entry.key.rsplit(".", 1)[1]): msgspec.json.decode(entry.value)
            for entry in await current_values(self.kv, f"item.{evaluation_id}.*")
            if entry.value
        }

    async def drop_items(self, evaluation_id: str, count: int) -> None:
        for index in range(count):
            try:
                await self.kv.purge(item_key(evaluation_id, index))
            except KeyNotFoundError:
                continue

    async def put_object(self, name: str, data: bytes) -> None:
        await self.objects.put(name, data)

    async def get_object(self, name: str) -> bytes | None:
        try:
            result = await self.objects.get(name)
        except (ObjectNotFoundError, NotFoundError):
            return None
        return result.data

    async def results(self, run: EvaluationRun) -> list[dict[str, Any]]:
        """Per-item rows of a run: from the Object Store once it ended, else those scored so far."""
        if run.results_object:
            data = await self.get_object(run.results_object)
            if data is not None:
                return [msgspec.json.decode(line) for line in data.splitlines() if line.strip()]
        return [row for _, row in sorted((await self.items(run.id)).items())]
