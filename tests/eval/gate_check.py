"""`just eval`: the answer-quality gate. A small fixed golden set on the real stack, against the committed baseline.

The gate set (tests/eval/gate: short excerpts of the Python documentation and hand-checked items) is
ingested into a fresh stack and evaluated by the evaluate service with the production prompt. The
committed baseline (tests/eval/gate/baseline.json) becomes the run's floors: every quality metric
may be worse than the baseline by at most its tolerance, else the run's gate fails and so does this
command (exit 1), naming each metric that fell. `--update-baseline` writes the run's figures as the
new baseline (commit it with the change that moved them, and say why).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gyre_cli.compare.drive import ingest_pages, log, put_set, run_evaluation
from gyre_contracts.evaluate import METRICS
from gyre_runtime.state.golden_sets import parse_golden_jsonl
from tests.eval.harness import LEGACY_LABEL, label_legacy_prompt, running_stack

GATE_DIR = Path(__file__).resolve().parent / "gate"
BASELINE = GATE_DIR / "baseline.json"
TENANT = "gate"
SET_NAME = "gate"
# Metrics the gate holds, with how much worse than the baseline they may get (absolute units).
# Greedy decoding does not make a run repeatable: three runs on one stack (evaluation concurrency 1,
# 2026-12-02) gave must_include 0.78, 0.72, 0.72, and across eleven runs 0.67-0.83 (18 answerable
# items: up to 3 answers change; which answer path an item takes still varies from run to run, a
# cause not yet found). The tolerance absorbs that, and an answer or two changing with the CPU's
# floating point (another machine, another thread count).
TOLERANCES: dict[str, float] = {
    "must_include": 0.17,
    "grounded_sentences": 0.10,
    "unanswerable_refused": 0.17,
    "answerable_refused": 0.10,
    "degenerate": 0.0,
    "recall_at_k": 0.05,
    "mrr_at_10": 0.10,
    "token_f1": 0.10,
}


def floors_from(baseline: dict[str, float]) -> dict[str, float]:
    floors = {}
    for metric, tolerance in TOLERANCES.items():
        if metric not in baseline:
            continue
        value = baseline[metric]
        floors[metric] = value - tolerance if METRICS[metric].higher_is_better else value + tolerance
    return floors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--update-baseline", action="store_true", help="write this run's figures as the baseline")
    parser.add_argument(
        "--legacy", action="store_true",
        help="gate Gyre's first default answer path instead of the production one (it fails: the gate can fail)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    items = parse_golden_jsonl((GATE_DIR / "golden.jsonl").read_bytes())
    documents_dir = GATE_DIR / "documents"
    documents = sorted(str(p.relative_to(documents_dir)) for p in documents_dir.rglob("*") if p.is_file())
    baseline: dict[str, float] = json.loads(BASELINE.read_text())["metrics"] if BASELINE.exists() else {}
    if not baseline and not args.update_baseline:
        print(f"no baseline at {BASELINE}: run with --update-baseline first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gyre-eval-gate-") as data_dir, running_stack(
        Path(data_dir), [TENANT]
    ) as (stack, clients):
        client = clients[TENANT]
        ingest_pages(client, documents_dir, documents)
        put_set(client, SET_NAME, items)
        body: dict[str, Any] = {"set": SET_NAME}
        if args.legacy:
            label_legacy_prompt(stack)
            body.update(prompt_label=LEGACY_LABEL, sampling={"max_tokens": 256})
        if baseline and not args.update_baseline:
            body["floors"] = floors_from(baseline)
        run = run_evaluation(client, body, timeout_s=900)
    elapsed = time.perf_counter() - started
    if run["status"] != "completed":
        print(f"gate: the evaluation failed: {run.get('reason')}", file=sys.stderr)
        return 1
    metrics: dict[str, float] = run["metrics"]
    print(f"gate set: {len(items)} items, {len(documents)} documents, {elapsed:.0f}s in all")
    print("| metric | baseline | this run | floor |")
    print("| --- | --- | --- | --- |")
    floors = floors_from(baseline)
    for metric in TOLERANCES:
        if metric in metrics:
            print(f"| {metric} | {baseline.get(metric, float('nan')):.3f} | {metrics[metric]:.3f} | "
                  f"{floors.get(metric, float('nan')):.3f} |")
    if args.update_baseline and not args.legacy:
        BASELINE.write_text(json.dumps({"prompt_version": run.get("prompt_version"),
                                        "model_version": run.get("model_version"),
                                        "metrics": {k: round(v, 4) for k, v in metrics.items()}}, indent=2) + "\n")
        log(f"baseline written to {BASELINE}")
        return 0
    if run.get("passed") is False:
        print("gate FAILED:\n  " + "\n  ".join(run.get("gate_failures", [])), file=sys.stderr)
        return 1
    print("gate passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
