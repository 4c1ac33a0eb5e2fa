"""Answer-quality benchmark (issue 7): the first default answer path against the current one, same harness, one run.

For each evaluation corpus (tests/eval/corpora: pages of Debian documentation packages and their
golden sets), on one fresh local stack with the real models:

1. the corpus's pages are ingested through the gateway into a tenant of their own;
2. its golden set is put (``PUT /v1/evaluations/sets``);
3. the evaluate service runs the set twice through the live pipeline: "before" is Gyre's first
   default (the ``legacy`` prompt version: whole chunks in the system message, no grounding check,
   relevance floor 0.2, max_tokens 256); "after" is the production default, with "before" as its
   baseline, so the service pairs the items and reports differences with bootstrap CIs and McNemar;
4. with `--dense`, the production default once more with dense retrieval instead of hybrid, paired with it;
5. the README's example (one document, "Where does Gyre store documents?") is asked through the chat API.

Run: `just bench-answers` (or `.venv/bin/python -m tests.bench.answers --write docs/benchmarks.md`);
`--corpus NAME` for one corpus, `--items N` for a seeded sample of each set.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from gyre_cli.compare.drive import ingest_pages, log, put_set, run_evaluation
from gyre_contracts.evaluate import METRICS
from tests.bench.sections import heading, write_section
from tests.eval.corpora import Corpus, corpus_names, ensure_package, load_corpus
from tests.eval.harness import LEGACY_LABEL, label_legacy_prompt, running_stack

SECTION_MARKER = "## Issue 7: answer quality, before and after"
SEED = 7
BEFORE_MAX_TOKENS = 256
README_TENANT = "readme"
HEADLINE = (
    "must_include", "token_f1", "rouge_l", "embedding_similarity", "grounded_sentences", "citation_validity",
    "unanswerable_refused", "answerable_refused", "degenerate", "cut_by_max_tokens", "recall_at_k", "mrr_at_10",
    "ndcg_at_10", "ttft_ms_p50", "total_ms_p50", "completion_tokens_mean", "cpu_s_mean",
)


def readme_example(client: httpx.Client) -> dict[str, Any]:
    """The README's own example, exactly as a user would try it."""
    response = client.post("/v1/documents", json={
        "id": "hello", "text": "Gyre stores documents in Qdrant and answers with citations."})
    response.raise_for_status()
    deadline = time.monotonic() + 120
    while client.get("/v1/documents/hello").json().get("status") != "indexed":
        if time.monotonic() > deadline:
            raise RuntimeError("the README's document was not indexed within 120 s")
        time.sleep(0.5)
    out: dict[str, Any] = {}
    for question in ("Where does Gyre store documents?", "What is Gyre?", "qwxz zzkq florp vintrabulous?"):
        answer = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]})
        answer.raise_for_status()
        body = answer.json()
        out[question] = {
            "answer": body["choices"][0]["message"]["content"],
            "citations": [c["document_id"] for c in body.get("citations", [])],
        }
    return out


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "-"
    unit = METRICS[metric].unit if metric in METRICS else "fraction"
    if unit == "ms":
        return f"{value:.0f}"
    if unit in ("tokens", "s"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def corpus_table(name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Each run's own figures, then the paired difference: over the items where the metric applies in both."""
    comparison = {row["metric"]: row for row in after.get("comparison", [])}
    lines = [
        f"| {name}: metric | before | after | paired after - before (95% CI) | items paired | p |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for metric in HEADLINE:
        b, a = before["metrics"].get(metric), after["metrics"].get(metric)
        if b is None and a is None:
            continue
        row = comparison.get(metric)
        paired = n = p = "-"
        if row is not None:
            paired = fmt(metric, row["diff"])
            if row.get("ci_low") is not None:
                paired += f" ({fmt(metric, row['ci_low'])} .. {fmt(metric, row['ci_high'])})"
            n = str(row["n"])
            p = "-" if row.get("p_value") is None else f"{row['p_value']:.3g}"
        lines.append(f"| {metric} | {fmt(metric, b)} | {fmt(metric, a)} | {paired} | {n} | {p} |")
    return lines


def worst_examples(run: Mapping[str, Any], count: int = 3) -> list[str]:
    rows = [r for r in run.get("items", []) if r["score"].get("must_include") is False]
    lines = []
    for row in rows[:count]:
        score = row["score"]
        answer = " ".join(score["answer"].split())[:160]
        lines.append(f"- *{score['question']}* (expected {', '.join(score['must_include_terms'])}): {answer!r}")
    return lines


def targets(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    b, a = before["metrics"], after["metrics"]
    checks = [
        ("correctness (must_include) at least 2x before",
         a.get("must_include", 0) >= 2 * b.get("must_include", 0), f"{b.get('must_include', 0):.3f} -> "
         f"{a.get('must_include', 0):.3f}"),
        ("0 degenerate answers", a.get("degenerate", 1) == 0, f"{a.get('degenerate', 0):.3f}"),
        ("unanswerable refused >= 0.90", a.get("unanswerable_refused", 0) >= 0.9,
         f"{a.get('unanswerable_refused', 0):.3f}"),
        ("answerable refused <= 0.10", a.get("answerable_refused", 1) <= 0.1, f"{a.get('answerable_refused', 0):.3f}"),
        ("grounded sentences >= 0.90", a.get("grounded_sentences", 0) >= 0.9, f"{a.get('grounded_sentences', 0):.3f}"),
    ]
    return [f"- {'met' if ok else '**not met**'}: {what} ({value})" for what, ok, value in checks]


RETRIEVAL_MODE_METRICS = ("must_include", "recall_at_k", "mrr_at_10", "grounded_sentences", "unanswerable_refused",
                          "answerable_refused")


def mode_table(hybrid: Mapping[str, Any], dense: Mapping[str, Any]) -> list[str]:
    comparison = {row["metric"]: row for row in dense.get("comparison", [])}
    lines = ["| retrieval mode | " + " | ".join(RETRIEVAL_MODE_METRICS) + " |",
             "| --- |" + " --- |" * len(RETRIEVAL_MODE_METRICS)]
    for name, run in (("hybrid (default)", hybrid), ("dense", dense)):
        lines.append(f"| {name} | " + " | ".join(fmt(m, run["metrics"].get(m)) for m in RETRIEVAL_MODE_METRICS) + " |")
    cells = []
    for metric in RETRIEVAL_MODE_METRICS:
        row = comparison.get(metric)
        cells.append("-" if row is None or row.get("ci_low") is None else
                     f"{fmt(metric, row['diff'])} ({fmt(metric, row['ci_low'])} .. {fmt(metric, row['ci_high'])})")
    lines.append("| dense - hybrid (95% CI) | " + " | ".join(cells) + " |")
    return lines


def report(results: Sequence[tuple[Corpus, Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]],
           readme: Mapping[str, Any],
           items_per_set: int, duration_s: float) -> str:
    lines = [
        heading(SECTION_MARKER),
        "",
        f"`just bench-answers` on {platform.machine()}, {platform.python_version()}, "
        f"{len(results)} corpora, {duration_s / 60:.0f} min in all. Each corpus's golden set runs twice "
        "through the live pipeline by the evaluate service, on one stack: **before** = Gyre's first "
        "default answer path (prompt `legacy`: whole chunks in the system message, relevance floor 0.2, "
        f"max_tokens {BEFORE_MAX_TOKENS}, the model's text as it comes, every source cited); **after** = the "
        "production default (prompt fields in `libs/gyre-runtime/gyre_runtime/state/prompts.py`, "
        "`DEFAULT_TEMPLATE`). Differences are paired by item: 95% bootstrap CI (2,000 resamples) and "
        "McNemar's exact p for pass/fail metrics (a paired permutation test for the others), computed by the service "
        "(`gyre eval run --baseline`), over the items where a metric applies in both runs (groundedness: answers "
        "that are not refusals; citation validity: answers that cite). "
        "No LLM judge: `must_include` is the correctness figure (every expected term, word-bounded, in the answer).",
        "",
    ]
    for corpus, before, after, dense in results:
        size = f"{len(corpus.items)} items" if not items_per_set else f"a seeded sample of {items_per_set} items"
        lines += [
            f"### {corpus.name} (Debian `{corpus.package}` {corpus.package_version}, {len(corpus.documents)} pages, "
            f"{size})",
            "",
            f"before: `{before.get('prompt_version')}`, after: `{after.get('prompt_version')}` "
            f"(model `{after.get('model_version')}`).",
            "",
            *corpus_table(corpus.name, before, after),
            "",
            "Targets of the issue on this corpus:",
            "",
            *targets(before, after),
            "",
            "Answers the after run still gets wrong (first three):",
            "",
            *(worst_examples(after) or ["- none"]),
            "",
        ]
        if dense:
            lines += ["The same default with dense retrieval instead of hybrid (paired with the hybrid run):", "",
                      *mode_table(after, dense), ""]
    lines += ["### The README's example, after", ""]
    for question, answer in readme.items():
        lines.append(f"- *{question}* -> {answer['answer']!r} (cites: {', '.join(answer['citations']) or 'nothing'})")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", action="append", choices=corpus_names(), help="only these corpora")
    parser.add_argument("--items", type=int, default=0, help="a seeded sample of N items per set (0: all)")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to put the section into")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw runs as JSON")
    parser.add_argument("--dense", action="store_true", help="also run the default with dense retrieval")
    parser.add_argument("--render", type=Path, default=None,
                        help="only write the report again from the runs a previous --json saved (no stack)")
    args = parser.parse_args()
    started = time.perf_counter()
    if args.render:
        saved = json.loads(args.render.read_text())
        results = [(load_corpus(name), runs["before"], runs["after"], runs.get("dense", {}))
                   for name, runs in saved["corpora"].items()]
        text = report(results, saved["readme"], saved.get("items_per_set", 0), saved["duration_s"])
        print(text)
        if args.write:
            write_section(args.write, text, SECTION_MARKER)
        return 0
    corpora = [load_corpus(name) for name in (args.corpus or corpus_names())]
    for corpus in corpora:
        ensure_package(corpus)
    results = []
    with tempfile.TemporaryDirectory(prefix="gyre-bench-answers-") as data_dir, running_stack(
        Path(data_dir), [c.name for c in corpora] + [README_TENANT]
    ) as (stack, clients):
        legacy = label_legacy_prompt(stack)
        log(f"legacy prompt stored as {legacy}")
        for corpus in corpora:
            client = clients[corpus.name]
            log(f"{corpus.name}: ingesting {len(corpus.documents)} pages")
            ingest_pages(client, corpus.root, corpus.documents)
            items = corpus.items
            if args.items:
                items = sorted(random.Random(SEED).sample(items, min(args.items, len(items))), key=lambda i: i.id)
            put_set(client, corpus.name, items)
            log(f"{corpus.name}: before ({len(items)} items)")
            before = run_evaluation(client, {
                "set": corpus.name, "prompt_label": LEGACY_LABEL, "sampling": {"max_tokens": BEFORE_MAX_TOKENS}})
            if before["status"] != "completed":
                raise RuntimeError(f"before run failed: {before.get('reason')}")
            log(f"{corpus.name}: after")
            after = run_evaluation(client, {"set": corpus.name, "baseline": before["id"]})
            if after["status"] != "completed":
                raise RuntimeError(f"after run failed: {after.get('reason')}")
            dense: dict[str, Any] = {}
            if args.dense:
                log(f"{corpus.name}: after, dense retrieval")
                dense = run_evaluation(
                    client, {"set": corpus.name, "retrieval": {"mode": "dense"}, "baseline": after["id"]}
                )
                if dense["status"] != "completed":
                    raise RuntimeError(f"dense run failed: {dense.get('reason')}")
            results.append((corpus, before, after, dense))
            log(f"{corpus.name}: must_include {before['metrics'].get('must_include', 0):.3f} -> "
                f"{after['metrics'].get('must_include', 0):.3f}")
        readme = readme_example(clients[README_TENANT])
    duration_s = time.perf_counter() - started
    text = report(results, readme, args.items, duration_s)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({
            "corpora": {c.name: {"before": b, "after": a, "dense": d} for c, b, a, d in results},
            "readme": readme, "items_per_set": args.items, "duration_s": duration_s,
        }, indent=1))
    if args.write:
        write_section(args.write, text, SECTION_MARKER)
    return 0


if __name__ == "__main__":
    sys.exit(main())

