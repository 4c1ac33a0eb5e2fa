"""What the model hub keeps: model versions, alias records, their KV keys, refs and the hub's errors.

Plain values and pure functions (no bus), so that refs, keys and records are tested without a server.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

from gyre_contracts import utc_now
from gyre_runtime.models.manifest import MANIFEST_NAME, FileEntry, ModelManifest, folder_digest
from gyre_runtime.state.keys import encode_key_part

Role = Literal["embedder", "generator"]
ROLES: tuple[Role, ...] = get_args(Role)
# The manifest's `kind` says what a model does; the hub's role says which service serves it.
ROLE_OF_KIND: dict[str, Role] = {"embedding": "embedder", "generation": "generator"}
PRODUCTION = "production"

_ALIAS = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class HubError(Exception):
    """A hub request that cannot be done as asked; the message says why and what to do instead."""


class NotFound(HubError):
    """An unknown model, version or alias; the message names what exists."""


class ArtifactMismatch(HubError):
    """Files (in a folder or in the Object Store) that are not the files the manifest lists."""


class NeedsReindex(HubError):
    """An embedder change that would leave the index holding another model's vectors."""


class Lineage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where a model version came from: the model it was built or tuned from, on what data, by what recipe."""

    base_model: str | None = None
    dataset: str | None = None
    recipe: str | None = None


class ModelVersion(msgspec.Struct, frozen=True, kw_only=True):
    """One pushed model folder: its manifest, where it came from, how it scored, and its objects.

    ``artifacts`` maps each file of the folder (``manifest.json`` included) to its object's name in the
    Object Store; ``manifest_file`` is the sha256 and size of ``manifest.json`` as pushed, so that a pull
    writes back exactly the bytes that were pushed.
    """

    id: str  # manifest.model_version: name:version:hash12
    name: str
    role: Role
    manifest: ModelManifest
    manifest_file: FileEntry
    artifacts: dict[str, str]
    pushed_by: str
    pushed_at: dt.datetime = msgspec.field(default_factory=utc_now)
    lineage: Lineage = Lineage()
    evaluation: dict[str, float] = {}

    @property
    def digest(self) -> str:
        """The folder digest: what makes two pushes the same version."""
        return self.manifest.digest or folder_digest(self.manifest.files)

    def expected_files(self) -> dict[str, FileEntry]:
        """Every file a copy of this version holds, with its sha256 and size."""
        return {**self.manifest.files, MANIFEST_NAME: self.manifest_file}


class AliasRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One move of an alias: which version it points at from now, which before, who moved it and why."""

    role: Role
    alias: str
    version: str  # a ModelVersion id
    previous: str | None
    moved_by: str
    reason: str
    moved_at: dt.datetime = msgspec.field(default_factory=utc_now)
    evaluation: str | None = None  # an evaluation id or report name the move relied on
    sequence: int = 1  # the move's number in this alias's history, from 1
    rollback: bool = False
    reindexed: bool = False  # an embedder move made after `gyre reindex` rebuilt the index for it

    @property
    def ref(self) -> str:
        return f"{self.role}@{self.alias}"


version_decoder = msgspec.json.Decoder(ModelVersion)
alias_decoder = msgspec.json.Decoder(AliasRecord)


# -- refs ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """A parsed ref: exactly one of (role, alias), (name, version id) or name alone."""

    text: str
    name: str | None = None
    version_id: str | None = None
    role: Role | None = None
    alias: str | None = None


def role_of(manifest: ModelManifest) -> Role:
    role = ROLE_OF_KIND.get(manifest.kind)
    if role is None:
        kinds = ", ".join(sorted(ROLE_OF_KIND))
        raise HubError(f"model {manifest.name!r} has kind {manifest.kind!r}: the hub takes {kinds}")
    return role


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise NotFound(f"unknown role {role!r}: roles are {', '.join(ROLES)}")
    return role


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias):
        raise HubError(f"invalid alias {alias!r}: use 1-64 letters, digits, '-' or '_'")
    return alias


def parse_ref(text: str) -> Ref:
    """``role@alias``, ``name:version:hash12`` or ``name``; HubError for anything else."""
    ref = text.strip()
    if "@" in ref:
        role, _, alias = ref.partition("@")
        return Ref(ref, role=check_role(role), alias=check_alias(alias))
    parts = ref.split(":")
    if len(parts) == 3 and all(parts):
        return Ref(ref, name=parts[0], version_id=ref)
    if len(parts) == 1 and ref:
        return Ref(ref, name=ref)
    raise HubError(
        f"invalid model ref {text!r}: use NAME, NAME:VERSION:HASH12 or ROLE@ALIAS (e.g. generator@production)"
    )


def parse_alias_ref(text: str) -> tuple[Role, str]:
    """``ROLE@ALIAS`` (what promote, rollback and history take)."""
    role, at, alias = text.strip().partition("@")
    if not at:
        raise HubError(f"expected ROLE@ALIAS (e.g. generator@production), got {text!r}")
    return check_role(role), check_alias(alias)


# -- KV keys (bucket gyre_models) ------------------------------------------------------------------
# The bucket's prefixes: ``version.`` (pushed versions), ``alias.`` (where each alias points now),
# ``history.`` (every move, one key each, so no KV history depth limits it), ``served.`` (the
# ModelRegistry: what running services serve).


def versions_pattern(name: str | None = None) -> str:
    return f"version.{encode_key_part(name)}.*" if name else "version.*.*"


def version_key(name: str, version_id: str) -> str:
    return f"version.{encode_key_part(name)}.{encode_key_part(version_id)}"


def alias_key(role: Role, alias: str) -> str:
    return f"alias.{role}.{alias}"


ALIASES_PATTERN = "alias.*.*"


def history_key(role: Role, alias: str, sequence: int) -> str:
    return f"history.{role}.{alias}.{sequence:010d}"


def history_pattern(role: Role, alias: str) -> str:
    return f"history.{role}.{alias}.*"


def object_prefix(manifest: ModelManifest) -> str:
    """Where a version's files live in the Object Store: ``<name>/<version>/<hash12>/`` (its id's parts)."""
    return "/".join(manifest.model_version.split(":")) + "/"
