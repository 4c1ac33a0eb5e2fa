"""Evaluation events: a golden set run through the live pipeline, its progress, its metrics and verdict."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

import msgspec

from gyre_contracts.base import Event, Model, utc_now
from gyre_contracts.generate import SamplingParams

EvaluationStatus = Literal["queued", "running", "completed", "failed"]


class RetrievalOverride(Model, frozen=True, kw_only=True):
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: Annotated[int, msgspec.Meta(ge=0, le=50)] = 4


class EvaluationRequested(Event, frozen=True, kw_only=True, tag="gyre.evaluate.requested.v1"):
    """Run every item of golden set ``set_name`` (``set_version`` 0: the latest) through retrieve + generate.

    Overrides left unset are what a user's request gets: the production prompt, the served model,
    hybrid retrieval with the deployment's top_k, the deployment's sampling defaults. ``baseline``
    names an earlier evaluation of the same set to compare with and gate against.
    """

    subject: ClassVar[str] = "evaluate.requested"
    evaluation_id: str
    set_name: str
    set_version: int = 0
    prompt_label: str = ""
    model: str = ""
    retrieval: RetrievalOverride | None = None
    sampling: SamplingParams | None = None
    baseline: str = ""
    # The gate: per metric, the worst acceptable value (a minimum, or a maximum where lower is better).
    floors: dict[str, float] = msgspec.field(default_factory=dict)
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)


class EvaluationProgress(Event, frozen=True, kw_only=True, tag="gyre.evaluate.progress.v1"):
    subject: ClassVar[str] = "evaluate.progress"
    evaluation_id: str
    done: int
    total: int
    errors: int = 0


class EvaluationCompleted(Event, frozen=True, kw_only=True, tag="gyre.evaluate.completed.v1"):
    """The end of an evaluation: ``completed`` with metrics (and a verdict when gated), or ``failed`` and why.

    Per-item results and the report are in the Object Store ``gyre_evaluations`` under ``results_object``.
    """

    subject: ClassVar[str] = "evaluate.completed"
    evaluation_id: str
    set_name: str
    set_version: int
    status: Literal["completed", "failed"]
    reason: str = ""
    metrics: dict[str, float] = msgspec.field(default_factory=dict)
    baseline: str = ""
    passed: bool | None = None  # None: no gate applied
    gate_failures: tuple[str, ...] = ()
    items: int = 0
    results_object: str = ""
    prompt_version: str = ""
    model_version: str = ""
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)
