"""Request and response bodies of the evaluation endpoints."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gyre_contracts.evaluate import METRICS
from gyre_contracts.limits import NAME_MAX_LENGTH, SAMPLING_TOP_K_MAX, TOP_K_MAX
from gyre_contracts.limits import SEED_MAX as SEED_MAX
from gyre_contracts.limits import SEED_MIN as SEED_MIN

SET_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# Empty (the default) or a label as ``gyre prompts label`` accepts it.
PROMPT_LABEL_PATTERN = r"^[A-Za-z0-9_-]{0,64}$"
EVALUATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
OPTIONAL_EVALUATION_ID_PATTERN = r"^[A-Za-z0-9_-]{0,128}$"

# The run metrics a gate's floors may name (the service cannot run a gate that names an unknown one).
EVALUATION_METRICS = tuple(METRICS)

RunStatus = Literal["queued", "running", "completed", "failed"]


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: int | None = Field(
        default=None, ge=0, le=TOP_K_MAX,
        description="Chunks retrieved per question (0 turns retrieval off); absent: GYRE_RETRIEVAL_TOP_K.",
    )


class SamplingSettings(BaseModel):
    """Sampling of every answer; a field left out is the deployment's default (max_tokens: GYRE_MAX_NEW_TOKENS)."""

    model_config = ConfigDict(extra="forbid")

    max_tokens: int | None = Field(default=None, ge=1, description="At most GYRE_MAX_TOKENS_LIMIT.")
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 is greedy (deterministic).")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    top_k: int = Field(default=50, ge=0, le=SAMPLING_TOP_K_MAX)
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX, strict=True)


class EvaluationCreate(BaseModel):
    """Run golden set ``set`` through retrieve + generate; unset overrides are what a user's request gets."""

    model_config = ConfigDict(extra="forbid")

    set: str = Field(pattern=SET_NAME_PATTERN, description="Golden set name (`PUT /v1/evaluations/sets/{name}`).")
    set_version: int = Field(default=0, ge=0, description="Version of the set; 0 or absent: the latest.")
    prompt_label: str = Field(
        default="",
        pattern=PROMPT_LABEL_PATTERN,
        description="Prompt template label (`production`, `candidate`, ...); empty: production.",
    )
    model: str = Field(
        default="", max_length=NAME_MAX_LENGTH, description="Generation model id or version from /v1/models."
    )
    retrieval: RetrievalSettings | None = None
    sampling: SamplingSettings | None = None
    baseline: str = Field(
        default="",
        pattern=OPTIONAL_EVALUATION_ID_PATTERN,
        description="Id of a completed evaluation of the same set: compare with it, gate against it.",
    )
    floors: dict[str, float] = Field(
        default_factory=dict,
        description="Per metric, the worst acceptable value (a minimum, or a maximum where lower is better).",
    )

    @field_validator("floors")
    @classmethod
    def _check_floors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(EVALUATION_METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(EVALUATION_METRICS)}")
        not_finite = sorted(name for name, floor in value.items() if not math.isfinite(floor))
        if not_finite:
            raise ValueError(f"floor of {', '.join(not_finite)} is not a finite number")
        return value


class EvaluationReceipt(BaseModel):
    id: str
    status: RunStatus
    set: str
    set_version: int = Field(description="The version the run evaluates: pinned when it was requested.")


class Progress(BaseModel):
    done: int
    total: int
    errors: int


class EvaluationOut(BaseModel):
    """One run: where it is, what it measured, how it compares with its baseline, and its scored items."""

    id: str
    status: RunStatus
    reason: str = Field(description="Why a run failed; empty otherwise.")
    set: str
    set_version: int
    progress: Progress
    metrics: dict[str, float]
    passed: bool | None = Field(description="The gate's verdict; null when no gate (floors or baseline) applied.")
    gate_failures: list[str]
    baseline: str
    comparison: list[dict[str, Any]] = Field(
        description="Per metric, baseline vs this run: diff, confidence interval, p-value (runs with a baseline)."
    )
    settings: dict[str, Any] = Field(description="The overrides asked for.")
    prompt_version: str
    model_version: str
    attempts: int
    created_at: dt.datetime
    updated_at: dt.datetime
    report_url: str | None = Field(description="The markdown report, once the run completed.")
    chart_url: str | None = Field(description="The comparison chart (PNG), for a completed run with a baseline.")
    items: list[dict[str, Any]] | None = Field(
        default=None, description="Per-item rows (scores, errors); null when asked for with `items=false`."
    )


class GoldenSetReceipt(BaseModel):
    name: str
    version: int
    items: int
    checksum: str
    created: bool = Field(description="False when the items equal the latest version's: no new version was made.")


class GoldenSetSummary(BaseModel):
    name: str
    versions: list[int]
    latest: int
    items: int = Field(description="Items of the latest version.")
    checksum: str = Field(description="Checksum of the latest version.")


class GoldenSetList(BaseModel):
    sets: list[GoldenSetSummary]


class GoldenSetCounts(BaseModel):
    items: int
    answerable: int
    unanswerable: int
    with_labels: int
    checked: int
    by_origin: dict[str, int]


class GoldenSetOut(BaseModel):
    name: str
    version: int
    checksum: str
    counts: GoldenSetCounts
    items: list[dict[str, Any]]
