"""`gyre eval`'s text output: metric values, tables of metrics, comparisons, items and golden sets."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

SHOWN_SET_ITEMS = 5
EXCERPT_CHARS = 70


def format_value(metric: str, value: float | None) -> str:
    """A metric as people read it: times in whole ms, tokens to a tenth, item counts whole, shares to 3 places."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if metric.endswith("_ms") or "_ms_" in metric or metric == "items" or metric.endswith("_items"):
        return f"{value:.0f}"
    if "tokens" in metric:
        return f"{value:.1f}"
    return f"{value:.3f}"


def format_signed(metric: str, value: float | None) -> str:
    text = format_value(metric, value)
    return text if text == "-" or text.startswith("-") else "+" + text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned text columns (the last one unpadded), a header and a rule."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = [str(cell).ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
        return "  ".join([*padded, str(cells[-1])]).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(row) for row in rows)])


def metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "no metrics yet"
    return table(("metric", "value"), [(name, format_value(name, value)) for name, value in metrics.items()])


def comparison_table(rows: Sequence[dict[str, Any]]) -> str:
    """The service's paired comparison: both values, the difference with its confidence interval and p-value."""
    out = []
    for row in rows:
        metric = str(row["metric"])
        low, high = row.get("ci_low"), row.get("ci_high")
        interval = f"[{format_signed(metric, low)}, {format_signed(metric, high)}]" if low is not None else "-"
        p_value = row.get("p_value")
        out.append((
            metric, format_value(metric, row.get("baseline")), format_value(metric, row.get("candidate")),
            format_signed(metric, row.get("diff")), interval, "-" if p_value is None else f"{p_value:.3f}",
            str(row.get("n", "")),
        ))
    return table(("metric", "baseline", "candidate", "diff", "95% CI", "p", "n"), out)


def differences_table(baseline: dict[str, float], candidate: dict[str, float]) -> str:
    """Plain differences (candidate - baseline) of every metric either run has."""
    names = list(dict.fromkeys([*candidate, *baseline]))
    rows = []
    for name in names:
        before, after = baseline.get(name), candidate.get(name)
        diff = after - before if before is not None and after is not None else None
        rows.append((name, format_value(name, before), format_value(name, after), format_signed(name, diff)))
    return table(("metric", "baseline", "candidate", "diff"), rows)


def progress_line(run: dict[str, Any]) -> str:
    progress = run.get("progress") or {}
    text = f"{run['id']}: {run['status']}, {progress.get('done', 0)}/{progress.get('total', 0)} items scored"
    if progress.get("errors"):
        text += f", {progress['errors']} errors"
    return text


def run_summary(run: dict[str, Any]) -> str:
    """What a run is and what it measured: its header, metrics table, gate verdict and comparison."""
    lines = [progress_line(run)]
    what = f"set {run['set']} v{run['set_version']}"
    if run.get("prompt_version"):
        what += f", prompt {run['prompt_version']}"
    if run.get("model_version"):
        what += f", model {run['model_version']}"
    if run.get("settings"):
        what += ", settings " + ", ".join(f"{k}={v}" for k, v in run["settings"].items())
    lines.append(what)
    if run["status"] == "failed":
        lines.append(f"failed: {run.get('reason') or 'no reason given'}")
    if run.get("metrics"):
        lines += ["", metrics_table(run["metrics"])]
    if run.get("passed") is not None:
        lines += ["", "gate: passed" if run["passed"] else "gate: FAILED"]
        lines += [f"  - {failure}" for failure in run.get("gate_failures") or []]
    if run.get("comparison"):
        lines += ["", f"compared with baseline {run.get('baseline')}:", comparison_table(run["comparison"])]
    return "\n".join(lines)


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def item_verdict(row: dict[str, Any]) -> str:
    """PASS or FAIL on what the item checks: its must-include terms, or a refusal of an unanswerable question."""
    if row.get("error"):
        return "ERROR"
    score = row.get("score") or {}
    for check in ("must_include", "unanswerable_refused"):
        if score.get(check) is not None:
            return "PASS" if score[check] else "FAIL"
    return "-"


def items_table(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "no items scored yet"
    out = []
    for row in rows:
        score = row.get("score") or {}
        answer = row.get("error") or score.get("answer", "")
        out.append((str(row.get("item_id") or score.get("item_id") or row.get("index", "")), item_verdict(row),
                    excerpt(score.get("question", ""), 50), excerpt(answer)))
    return table(("item", "verdict", "question", "answer"), out)


def sets_table(sets: Sequence[dict[str, Any]]) -> str:
    if not sets:
        return "no golden sets yet: store one with `gyre eval sets put NAME FILE.jsonl`"
    rows = [(s["name"], str(s["latest"]), ",".join(map(str, s["versions"])), str(s["items"]), s["checksum"][:12])
            for s in sets]
    return table(("set", "latest", "versions", "items", "checksum"), rows)


def set_summary(golden: dict[str, Any], first: int = SHOWN_SET_ITEMS) -> str:
    counts = golden["counts"]
    origins = ", ".join(f"{origin} {count}" for origin, count in counts.get("by_origin", {}).items())
    lines = [
        f"{golden['name']} v{golden['version']}: {counts['items']} items ({counts['answerable']} answerable, "
        f"{counts['unanswerable']} unanswerable, {counts['checked']} checked, {counts['with_labels']} with "
        f"relevant ids); origins: {origins or '-'}",
        f"checksum {golden['checksum']}",
    ]
    items = golden["items"]
    if items:
        lines.append(f"first {min(first, len(items))} of {len(items)}:")
    for item in items[:first]:
        if item.get("answerable", True):
            expects = "must include: " + ", ".join(item["must_include"]) if item.get("must_include") else "answerable"
        else:
            expects = "unanswerable"
        lines.append(f"  {item['id']}: {excerpt(item['question'])} ({expects})")
    return "\n".join(lines)


def put_receipt(receipt: dict[str, Any]) -> str:
    if receipt["created"]:
        return (f"stored {receipt['name']} version {receipt['version']} ({receipt['items']} items, "
                f"checksum {receipt['checksum'][:12]})")
    return f"unchanged: {receipt['name']} version {receipt['version']} already holds these {receipt['items']} items"
