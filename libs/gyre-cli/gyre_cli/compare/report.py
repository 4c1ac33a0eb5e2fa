"""The model-selection report: a Markdown page and a PNG from the rows `gyre models compare` measured.

The choice of a default is a rule written here, not a judgement made afresh each time, so the
report can say why and anyone can rerun it:

- generators: among the candidates whose answers loop or run on in at most ``DEGENERATE_LIMIT`` of
  the items, the one with the highest answer correctness (must_include), unless a cheaper one (CPU
  seconds per answer) is within the set's sampling error of it: the half-width of the 95% interval
  of a proportion over the set's answerable items, at least ``TIE``. A golden set of a few dozen
  items cannot tell 0.78 from 0.83, and the rule does not pretend it can.
- embedders: the highest retrieval nDCG@10; within ``TIE``, the one that indexed the pages faster.

Only local candidates can be chosen as a default (a remote endpoint is a user's choice to make,
with its own terms and its own machine); the report still measures them.
"""

from __future__ import annotations

import datetime as dt
import math
import platform
from collections.abc import Sequence
from pathlib import Path

from gyre_cli.compare.candidates import Role
from gyre_cli.compare.runner import Row

TIE = 0.03
DEGENERATE_LIMIT = 0.05

QUALITY_COLUMNS: dict[Role, tuple[tuple[str, str], ...]] = {
    "generator": (
        ("must_include", "correct"), ("grounded_sentences", "grounded"),
        ("unanswerable_refused", "refuses unanswerable"), ("answerable_refused", "refuses answerable"),
        ("degenerate", "degenerate"), ("token_f1", "token F1"),
    ),
    "embedder": (("ndcg_at_10", "nDCG@10"), ("recall_at_k", "recall@k"), ("mrr_at_10", "MRR@10"),
                 ("must_include", "correct")),
}

# The design's selection factors, and where each is answered from.
FACTORS: tuple[tuple[str, str, str], ...] = (
    ("requirements (quality)", "measured", "the quality columns: the golden set through the evaluate service"),
    ("cost", "measured", "CPU seconds per answer, peak memory, disk; time to index for embedders"),
    ("scalability", "measured + fact", "answer rate (tokens/s) and time to first token; context length"),
    ("privacy", "fact", "local: nothing leaves the machine; an endpoint sees every question and its sources"),
    ("licence", "fact", "from the model's manifest (the package it was built from)"),
    ("integration", "fact", "format: ONNX (onnxruntime-genai / ONNX Runtime) in process, or an OpenAI API"),
    ("customisation", "fact + judgement", "open weights in the model store can be fine-tuned and rebuilt; "
     "an endpoint only by its provider"),
    ("support, skills, long-term viability", "judgement",
     "a model family with a maintained export path (onnxruntime-genai builder, optimum) and an active "
     "upstream; written down by whoever runs the comparison, not measured"),
)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mb(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MB"


def sampling_margin(p: float, n: float) -> float:
    """Half-width of the 95% normal interval of a proportion ``p`` measured on ``n`` items (at least TIE)."""
    if n <= 0:
        return TIE
    return max(TIE, 1.96 * math.sqrt(max(p * (1 - p), 0.0) / n))


def choose(rows: Sequence[Row], role: Role) -> tuple[Row | None, str]:
    """The default for ``role`` by the rule above, and the sentence that says why."""
    pool = [r for r in rows if r.ok and r.candidate.role == role and r.candidate.local]
    if role == "generator":
        pool = [r for r in pool if r.metrics.get("degenerate", 1.0) <= DEGENERATE_LIMIT]
        key, cost_name = "must_include", "CPU seconds per answer"
    else:
        key, cost_name = "ndcg_at_10", "time to index the pages"
    if not pool:
        return None, f"no local {role} completed its run with at most {DEGENERATE_LIMIT:.0%} degenerate answers"
    best = max(pool, key=lambda r: r.metrics.get(key, 0.0))
    top = best.metrics.get(key, 0.0)
    margin = sampling_margin(top, best.metrics.get("answerable_items", 0.0)) if role == "generator" else TIE
    close = [r for r in pool if r.metrics.get(key, 0.0) >= top - margin]

    def cost_of(r: Row) -> float:
        if role == "generator":
            return r.metrics.get("cpu_s_mean", float("inf"))
        return r.ingest_s if r.ingest_s is not None else float("inf")

    chosen = min(close, key=cost_of)
    why = f"highest {key} ({top:.3f}: {best.candidate.label})"
    if chosen is not best:
        why = (f"{key} {chosen.metrics.get(key, 0.0):.3f}, within {margin:.3f} (the set's sampling error) of the "
               f"{why}, at a lower {cost_name} ({cost_of(chosen):.2f} vs {cost_of(best):.2f})")
    elif len(close) > 1:
        why += f"; the others within {margin:.3f} cost more {cost_name}"
    return chosen, why


def _table(rows: Sequence[Row], role: Role) -> list[str]:
    quality = QUALITY_COLUMNS[role]
    cost_cols = (["CPU s/answer", "TTFT p50 ms", "answer tokens/s", "peak RAM"] if role == "generator"
                 else ["index time s", "peak RAM"])
    head = ["candidate", *(label for _, label in quality), *cost_cols, "disk", "licence", "context / dim"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        if r.candidate.role != role:
            continue
        facts = r.candidate.facts
        size = facts.get("context length") or facts.get("dimension") or "-"
        if not r.ok:
            cells = [r.candidate.label, f"failed: {r.error}"] + ["-"] * (len(head) - 2)
        else:
            m = r.metrics
            costs = ([_fmt(m.get("cpu_s_mean"), 2), _fmt(m.get("ttft_ms_p50"), 0), _fmt(r.tokens_per_s, 1),
                      _mb(r.peak_rss_bytes)] if role == "generator" else [_fmt(r.ingest_s, 0), _mb(r.peak_rss_bytes)])
            cells = [r.candidate.label, *(_fmt(m.get(k)) for k, _ in quality), *costs,
                     _mb(r.candidate.disk_bytes), facts.get("licence", "-"), size]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(rows: Sequence[Row], *, set_label: str, chart_name: str | None, command: str) -> str:
    """The report's Markdown."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Model selection",
        "",
        f"Measured {now} on {platform.machine()} ({_cpus()}), golden set: {set_label}.",
        f"Reproduce: `{command}`.",
        "",
        "Each candidate ran on a private stack of its own, with the default of the other role, through the "
        "evaluate service (the metrics of `gyre eval`). Peak RAM is the peak resident set of the process that "
        "runs the candidate (generate or embed). Answer tokens/s is completion tokens over the whole answer time "
        "(prefill included), median over items.",
        "",
        "Reading it: answers pass Gyre's grounding check, which replaces an answer its sources do not support by a "
        "quote of them (each run's own report counts how often). Correctness therefore measures the model together "
        "with that check and with retrieval, and a weak model can score close to a strong one; groundedness, "
        "refusals and cost tell them apart. Time to first token is the whole answer's time, since a checked answer "
        "is sent once checked.",
        "",
    ]
    for role, title in (("generator", "Generators"), ("embedder", "Embedders")):
        if not any(r.candidate.role == role for r in rows):
            continue
        chosen, why = choose(rows, role)  # type: ignore[arg-type]
        out += [f"## {title}", "", *_table(rows, role), ""]  # type: ignore[arg-type]
        out += [f"**Choice: {chosen.candidate.label if chosen else 'none'}**: {why}.", ""]
    if chart_name:
        out += [f"![quality against latency, point size = memory]({chart_name})", ""]
    out += ["## Selection factors", "", "| factor | answered by | how |", "| --- | --- | --- |"]
    out += [f"| {name} | {kind} | {how} |" for name, kind, how in FACTORS]
    out += ["", "## Facts from the manifests", ""]
    for r in rows:
        facts = "; ".join(f"{k}: {v}" for k, v in r.candidate.facts.items())
        out.append(f"- **{r.candidate.label}** ({r.candidate.role}{'' if r.candidate.local else ', remote'}): {facts}")
    return "\n".join(out) + "\n"


def _cpus() -> str:
    import os

    return f"{os.cpu_count()} CPUs"


def chart(rows: Sequence[Row], path: Path) -> bool:
    """Quality against latency (point size = peak memory) as a PNG; False when nothing could be drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.ok]
    if not ok:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, role, quality, latency, xlabel in (
        (axes[0], "generator", "must_include", "total_ms_p50", "median answer time (ms)"),
        (axes[1], "embedder", "ndcg_at_10", "ingest", "time to index the pages (s)"),
    ):
        points = [r for r in ok if r.candidate.role == role]
        for r in points:
            x = r.ingest_s if latency == "ingest" else r.metrics.get(latency)
            y = r.metrics.get(quality)
            if x is None or y is None:
                continue
            size = max(30.0, (r.peak_rss_bytes or 0) / 2**20)
            ax.scatter([x], [y], s=size, alpha=0.6)
            ax.annotate(r.candidate.label, (x, y), fontsize=8, xytext=(4, 4), textcoords="offset points")
        ax.set_title(f"{role}s: {quality} against latency\n(point size = peak RAM, MB)", fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(quality)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
