"""Human-readable reports of an evaluation run: a markdown summary and a comparison bar chart."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gyre_contracts.evaluate import METRICS
from gyre_evaluate.comparison import Comparison, GateResult
from gyre_evaluate.metrics import ItemScore

# Answers longer than this are cut in the worst-items section: the report is for reading.
_ANSWER_CHARS = 600


def _cell(value: object) -> str:
    """A value as the text of one markdown table cell."""
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, list | tuple | set | frozenset):
        text = ", ".join(str(part) for part in value)
    else:
        text = str(value)
    # A pipe would end the cell and a line break the row.
    return " ".join(text.split()).replace("|", "\\|")


def _flatten(summary: Mapping[str, object], prefix: str = "") -> Iterable[tuple[str, object]]:
    for key, value in summary.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _metric_value(name: str, value: float) -> str:
    unit = METRICS[name].unit if name in METRICS else "fraction"
    if unit in ("ms", "items"):
        return f"{value:.0f}"
    if unit in ("tokens", "s"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def _signed(name: str, value: float) -> str:
    text = _metric_value(name, abs(value))
    return f"-{text}" if value < 0 and text.strip("0.") else f"+{text}"


def _header(run_summary: Mapping[str, object]) -> list[str]:
    title = "# Evaluation"
    if "set" in run_summary:
        title += f" of {run_summary['set']}"
    if "version" in run_summary:
        title += f" (version {run_summary['version']})"
    lines = [title, "", "| Setting | Value |", "| --- | --- |"]
    lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in _flatten(run_summary)]
    return lines


def _metrics_table(metrics: Mapping[str, float]) -> list[str]:
    lines = ["## Metrics", "", "| Metric | Value | Better | Meaning |", "| --- | ---: | --- | --- |"]
    # METRICS order groups related metrics; names it does not know come last, so nothing is hidden.
    names = [name for name in METRICS if name in metrics] + sorted(set(metrics) - set(METRICS))
    for name in names:
        spec = METRICS.get(name)
        better = "" if spec is None or spec.unit == "items" else ("higher" if spec.higher_is_better else "lower")
        meaning = spec.description if spec is not None else ""
        lines.append(f"| {name} | {_metric_value(name, metrics[name])} | {better} | {_cell(meaning)} |")
    return lines


def _verdict(name: str, low: float | None, high: float | None) -> str:
    """Better or worse only when the interval excludes no change."""
    if low is None or high is None or low <= 0 <= high:
        return "no clear change"
    improved = (low > 0) == METRICS[name].higher_is_better
    return "better" if improved else "worse"


def _comparison_table(comparison: Comparison) -> list[str]:
    level = f"{comparison.confidence:.0%}"
    lines = [
        "## Comparison with the baseline",
        "",
        f"{comparison.paired} paired items; {comparison.only_in_baseline} only in the baseline, "
        f"{comparison.only_in_candidate} only in the candidate. Differences are candidate - baseline "
        f"over the items both runs scored; p from McNemar's exact test for pass/fail metrics, "
        f"from a paired permutation test for the others.",
        "",
        f"| Metric | Baseline | Candidate | Diff | {level} CI | p | n | Verdict |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for row in comparison.metrics:
        if row.ci_low is None or row.ci_high is None:
            continue  # item counts: the same in both runs by construction
        interval = f"[{_signed(row.metric, row.ci_low)}, {_signed(row.metric, row.ci_high)}]"
        p_value = "" if row.p_value is None else f"{row.p_value:.3g}"
        lines.append(
            f"| {row.metric} | {_metric_value(row.metric, row.baseline)} | {_metric_value(row.metric, row.candidate)} "
            f"| {_signed(row.metric, row.diff)} | {interval} | {p_value} | {row.n} "
            f"| {_verdict(row.metric, row.ci_low, row.ci_high)} |")
    return lines


def _gate_section(gate_result: GateResult) -> list[str]:
    if gate_result.passed:
        return ["## Gate: passed", "", "Every floor and tolerance holds."]
    return ["## Gate: FAILED", "", *(f"- {failure}" for failure in gate_result.failures)]


def _expected(item: ItemScore) -> str:
    if not item.answerable:
        return "a refusal: the golden set marks the question unanswerable"
    parts = []
    if item.reference:
        parts.append(item.reference)
    if item.must_include_terms:
        parts.append("must include: " + ", ".join(item.must_include_terms))
    return "; ".join(parts) or "(no reference)"


def _problems(item: ItemScore) -> list[str]:
    problems = []
    if item.answerable_refused:
        problems.append("refused an answerable question")
    if item.unanswerable_refused is False:
        problems.append("answered an unanswerable question")
    if item.must_include is False and not item.refused:
        problems.append("missing must-include terms")
    if item.degenerate:
        problems.append("repetition loop")
    if item.cut_by_max_tokens:
        problems.append("cut by the token limit")
    figures = [("token_f1", item.token_f1), ("grounded_sentences", item.grounded_sentences)]
    problems += [f"{name} {value:.2f}" for name, value in figures if value is not None]
    return problems


def _quote(text: str) -> str:
    if len(text) > _ANSWER_CHARS:
        text = text[:_ANSWER_CHARS].rstrip() + " …"
    return "\n".join(f"> {line}" for line in (text.splitlines() or [""]))


def _worst_section(items: Sequence[ItemScore]) -> list[str]:
    lines = ["## Worst items"]
    for item in items:
        lines += [
            "",
            f"### {item.item_id}",
            "",
            f"**Question:** {item.question}",
            "",
            "**Answer:**",
            "",
            _quote(item.answer),
            "",
            f"**Expected:** {_expected(item)}",
            "",
            f"**Problems:** {'; '.join(_problems(item)) or 'none flagged'}",
        ]
    return lines


def markdown_report(
    run_summary: Mapping[str, object],
    metrics: Mapping[str, float],
    gate_result: GateResult | None = None,
    comparison: Comparison | None = None,
    worst_items: Sequence[ItemScore] = (),
) -> str:
    """The run as markdown: settings, metrics, comparison with the baseline, gate verdict, worst items.

    ``run_summary`` holds what identifies the run: ``set`` and ``version`` make the title, and every
    entry (nested mappings such as the settings flattened to dotted keys) is listed in the header.
    """
    sections = [_header(run_summary), _metrics_table(metrics)]
    if comparison is not None:
        sections.append(_comparison_table(comparison))
    if gate_result is not None:
        sections.append(_gate_section(gate_result))
    if worst_items:
        sections.append(_worst_section(worst_items))
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def _badness(item: ItemScore) -> float:
    """How badly an item went: one per failure, plus what is missing of its F1 and groundedness."""
    failures = (
        bool(item.answerable_refused),
        item.unanswerable_refused is False,
        item.must_include is False,
        item.degenerate,
        item.cut_by_max_tokens,
    )
    shortfall = sum(1.0 - value for value in (item.token_f1, item.grounded_sentences) if value is not None)
    return sum(failures) + shortfall


def pick_worst_items(scores: Iterable[ItemScore], limit: int = 5) -> list[ItemScore]:
    """The ``limit`` items that went worst (failures first, then low F1 and groundedness); items with
    nothing wrong are never picked."""
    ranked = sorted(((_badness(item), index, item) for index, item in enumerate(scores)), key=lambda x: (-x[0], x[1]))
    return [item for badness, _, item in ranked[:limit] if badness > 0]


def comparison_chart(comparison: Comparison, path: str | os.PathLike[str]) -> None:
    """Writes a PNG bar chart of baseline against candidate for the 0..1 metrics, the candidate's
    error bar being the confidence interval of the difference, placed on the baseline value."""
    rows = [
        row for row in comparison.metrics
        if METRICS[row.metric].unit == "fraction" and row.ci_low is not None and row.ci_high is not None
    ]
    # The object API with an explicit Agg canvas: no pyplot global state, no display needed.
    figure = Figure(figsize=(max(6.0, 0.9 * len(rows) + 2.0), 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if rows:
        positions = list(range(len(rows)))
        width = 0.38
        baseline = [row.baseline for row in rows]
        candidate = [row.candidate for row in rows]
        # The interval bounds candidate - baseline; around the bar its ends are baseline + bound.
        below = [max(0.0, row.diff - (row.ci_low or 0.0)) for row in rows]
        above = [max(0.0, (row.ci_high or 0.0) - row.diff) for row in rows]
        axes.bar([x - width / 2 for x in positions], baseline, width, label="baseline", color="#9aa5b1")
        axes.bar(
            [x + width / 2 for x in positions], candidate, width, yerr=[below, above], capsize=3,
            label=f"candidate ({comparison.confidence:.0%} CI of the difference)", color="#3b7dd8")
        axes.set_xticks(positions, [row.metric for row in rows], rotation=35, ha="right")
        lowest = min(0.0, *baseline, *candidate)
        # Headroom above 1 keeps the legend off the bars of perfect scores.
        axes.set_ylim(lowest, 1.25)
        axes.legend(loc="upper center", ncols=2, fontsize="small")
    else:
        axes.text(0.5, 0.5, "no 0..1 metric in both runs", ha="center", va="center")
        axes.set_axis_off()
    axes.set_title(f"Baseline vs candidate ({comparison.paired} paired items)")
    figure.tight_layout()
    figure.savefig(os.fspath(path), format="png")
