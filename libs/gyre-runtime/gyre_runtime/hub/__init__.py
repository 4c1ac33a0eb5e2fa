"""The model hub: model versions and their files on the bus, per-role aliases and their history."""

from gyre_runtime.hub.model_hub import ModelHub
from gyre_runtime.hub.records import (
    ROLES,
    AliasRecord,
    ArtifactMismatch,
    HubError,
    Lineage,
    ModelVersion,
    NeedsReindex,
    NotFound,
    Role,
    parse_alias_ref,
    parse_ref,
    role_of,
)

__all__ = [
    "ROLES",
    "AliasRecord",
    "ArtifactMismatch",
    "HubError",
    "Lineage",
    "ModelHub",
    "ModelVersion",
    "NeedsReindex",
    "NotFound",
    "Role",
    "parse_alias_ref",
    "parse_ref",
    "role_of",
]
