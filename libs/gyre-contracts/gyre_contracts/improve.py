"""Improvement events: datasets, evaluations, prompt and model promotions."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

import msgspec

from gyre_contracts.base import Event, utc_now
from gyre_contracts.limits import Count, Name, ShortText


class _VersionedArtefact(Event, frozen=True, kw_only=True):
    """What a dataset, prompt or model event starts with: the artefact's name and version."""

    name: Name
    version: Name


class DatasetBuilt(_VersionedArtefact, frozen=True, kw_only=True, tag="gyre.improve.dataset.v1"):
    subject: ClassVar[str] = "improve.dataset"
    examples: Count
    object_name: Name
    built_at: dt.datetime = msgspec.field(default_factory=utc_now)


class CandidateEvaluated(Event, frozen=True, kw_only=True, tag="gyre.improve.evaluated.v1"):
    """Deprecated: the evaluate service's EvaluationCompleted replaces it; kept until no one publishes it."""

    subject: ClassVar[str] = "improve.evaluated"
    name: Name
    candidate: Name
    baseline: Name
    dataset: Name
    metrics: dict[Name, float] = msgspec.field(default_factory=dict)
    passed: bool
    evaluated_at: dt.datetime = msgspec.field(default_factory=utc_now)


class PromptPromoted(_VersionedArtefact, frozen=True, kw_only=True, tag="gyre.improve.prompt_promoted.v1"):
    subject: ClassVar[str] = "improve.prompt_promoted"
    label: Name = "production"
    promoted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class ModelPromoted(_VersionedArtefact, frozen=True, kw_only=True, tag="gyre.improve.model_promoted.v1"):
    """An alias of the model hub moved (`gyre models promote` or `rollback`): ``version`` is the model
    version id (``name:version:hash12``) that ``role@alias`` points at from now on.

    The fields after ``alias`` came with the hub; their defaults let events published before decode.
    """

    subject: ClassVar[str] = "improve.model_promoted"
    alias: Name = "production"
    promoted_at: dt.datetime = msgspec.field(default_factory=utc_now)
    role: Name = ""  # "embedder" | "generator"
    previous: Name | None = None  # the version the alias pointed at before (None: its first move)
    reason: ShortText = ""
    by: Name = ""  # who moved it
    evaluation: Name | None = None  # the evaluation id or report the move relied on
    rollback: bool = False
