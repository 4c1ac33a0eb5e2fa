"""Evaluation events: a golden set run through the live pipeline, its progress, its metrics and verdict."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, Literal, NamedTuple

import msgspec

from gyre_contracts.base import Event, Model, utc_now
from gyre_contracts.generate import SamplingParams
from gyre_contracts.limits import Count, Identifier, Name, OptionalIdentifier, RetrievalTopK

EvaluationStatus = Literal["queued", "running", "completed", "failed"]

# What each figure of EvaluationCompleted.metrics means, which way is better, how it is made from the
# per-item figures: one table for the evaluate service, the gateway (gate floors) and reports.
Statistic = Literal["mean", "share", "p50", "p95", "count"]
# "fraction": on the 0..1 scale (rates and scores); the others are cost units.
Unit = Literal["fraction", "ms", "s", "tokens", "items"]


class MetricSpec(NamedTuple):
    """What a run metric means and how it is made from the per-item figures."""

    description: str
    higher_is_better: bool
    field: str  # the ItemScore field it summarises; "" for the item counts
    statistic: Statistic
    unit: Unit

    @property
    def percentile(self) -> float | None:
        """The percentile the metric is, for "p50"/"p95"; ``None`` for the others."""
        return {"p50": 50.0, "p95": 95.0}.get(self.statistic)


METRICS: dict[str, MetricSpec] = {
    "recall_at_k": MetricSpec(
        "share of the relevant ids found in the top k retrieved (items with labels)",
        True, "recall_at_k", "mean", "fraction"),
    "mrr_at_10": MetricSpec(
        "reciprocal rank of the first relevant hit in the top 10 (items with labels)",
        True, "mrr_at_10", "mean", "fraction"),
    "ndcg_at_10": MetricSpec(
        "nDCG of the top 10 with binary gains (items with labels)",
        True, "ndcg_at_10", "mean", "fraction"),
    "must_include": MetricSpec(
        "share of answerable items whose answer holds every must-include term (a refusal fails)",
        True, "must_include", "share", "fraction"),
    "token_f1": MetricSpec(
        "SQuAD token F1 against the reference answer (answerable items with a reference)",
        True, "token_f1", "mean", "fraction"),
    "rouge_l": MetricSpec(
        "ROUGE-L F-measure against the reference answer (answerable items with a reference)",
        True, "rouge_l", "mean", "fraction"),
    "embedding_similarity": MetricSpec(
        "cosine similarity of answer and reference embeddings (answerable items with a reference)",
        True, "embedding_similarity", "mean", "fraction"),
    "grounded_sentences": MetricSpec(
        "share of answer sentences supported by the sources (answers that are not refusals)",
        True, "grounded_sentences", "mean", "fraction"),
    "citation_validity": MetricSpec(
        "share of citing sentences whose citations support them (answers that cite)",
        True, "citation_validity", "mean", "fraction"),
    "unanswerable_refused": MetricSpec(
        "share of unanswerable items the pipeline refused to answer",
        True, "unanswerable_refused", "share", "fraction"),
    "answerable_refused": MetricSpec(
        "share of answerable items the pipeline refused to answer",
        False, "answerable_refused", "share", "fraction"),
    "degenerate": MetricSpec(
        "share of answers stuck in a repetition loop",
        False, "degenerate", "share", "fraction"),
    "cut_by_max_tokens": MetricSpec(
        "share of answers cut off by the token limit",
        False, "cut_by_max_tokens", "share", "fraction"),
    "ttft_ms_p50": MetricSpec("median time to the first token, ms", False, "ttft_ms", "p50", "ms"),
    "total_ms_p50": MetricSpec("median time to the whole answer, ms", False, "total_ms", "p50", "ms"),
    "total_ms_p95": MetricSpec("95th percentile of the time to the whole answer, ms", False, "total_ms", "p95", "ms"),
    "prompt_tokens_mean": MetricSpec("mean prompt tokens per item", False, "prompt_tokens", "mean", "tokens"),
    "completion_tokens_mean": MetricSpec(
        "mean completion tokens per item", False, "completion_tokens", "mean", "tokens"),
    "cpu_s_mean": MetricSpec("mean CPU seconds per item", False, "cpu_s", "mean", "s"),
    "items": MetricSpec("items scored", True, "", "count", "items"),
    "answerable_items": MetricSpec("answerable items scored", True, "", "count", "items"),
    "unanswerable_items": MetricSpec("unanswerable items scored", True, "", "count", "items"),
}



class RetrievalOverride(Model, frozen=True, kw_only=True):
    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    top_k: RetrievalTopK = 4


class EvaluationRequested(Event, frozen=True, kw_only=True, tag="gyre.evaluate.requested.v1"):
    """Run every item of golden set ``set_name`` (``set_version`` 0: the latest) through retrieve + generate.

    Overrides left unset are what a user's request gets: the production prompt, the served model,
    hybrid retrieval with the deployment's top_k, the deployment's sampling defaults. ``baseline``
    names an earlier evaluation of the same set to compare with and gate against.
    """

    subject: ClassVar[str] = "evaluate.requested"
    evaluation_id: Identifier
    set_name: Name
    set_version: Count = 0
    prompt_label: Name = ""
    model: Name = ""
    retrieval: RetrievalOverride | None = None
    sampling: SamplingParams | None = None
    baseline: OptionalIdentifier = ""
    # The gate: per metric, the worst acceptable value (a minimum, or a maximum where lower is better).
    floors: dict[Name, float] = msgspec.field(default_factory=dict)
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)


class EvaluationProgress(Event, frozen=True, kw_only=True, tag="gyre.evaluate.progress.v1"):
    subject: ClassVar[str] = "evaluate.progress"
    evaluation_id: Identifier
    done: Count
    total: Count
    errors: Count = 0


class EvaluationCompleted(Event, frozen=True, kw_only=True, tag="gyre.evaluate.completed.v1"):
    """The end of an evaluation: ``completed`` with metrics (and a verdict when gated), or ``failed`` and why.

    Per-item results and the report are in the Object Store ``gyre_evaluations`` under ``results_object``.
    """

    subject: ClassVar[str] = "evaluate.completed"
    evaluation_id: Identifier
    set_name: Name
    set_version: Count
    status: Literal["completed", "failed"]
    reason: str = ""
    metrics: dict[Name, float] = msgspec.field(default_factory=dict)
    baseline: OptionalIdentifier = ""
    passed: bool | None = None  # None: no gate applied
    gate_failures: tuple[str, ...] = ()
    items: Count = 0
    results_object: Name = ""
    prompt_version: Name = ""
    model_version: Name = ""
    completed_at: dt.datetime = msgspec.field(default_factory=utc_now)
