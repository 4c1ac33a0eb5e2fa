"""Issue 9's no-regression check: the bus on FastStream against the code before it, in one run.

A git worktree of ``--before`` (the last commit before the bus moved to FastStream) gets its own
environment (``scripts/setup.sh``); then issue 2's benchmark (``tests.bench.run``: ChunksReady ->
DocumentIndexed through the embed service against raw ONNX Runtime on the same chunks, chat through
the gateway against the raw onnxruntime-genai backend) runs in each checkout in turn, before and
after alternating (B A A B ...) so background load falls on both alike. Each run's ratios are
against baselines measured in that run; the table shows the median of each side's runs.

Run: `just bench-bus` (or `.venv/bin/python -m tests.bench.bus_before_after --write docs/benchmarks.md`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.sections import write_section

REPO = Path(__file__).resolve().parents[2]
BEFORE = "4bc2f62"  # the last commit before the bus moved to FastStream
ROW = re.compile(r"^\| (?P<measure>[^|]+?) \| (?P<value>-?[0-9.]+)(?: [a-z/]+)? \|$")
MARKER = "## Issue 9: the bus on FastStream, before and after"

MEASURES = (
    ("publish -> handler start p50", "publish -> consumer handler start, p50 (ms)", "the bus's own cost"),
    ("publish -> handler start p95", "publish -> consumer handler start, p95 (ms)", ""),
    ("pipeline / raw", "embed service / raw ONNX Runtime (chunks/s)", ">= 1.0 and not below before"),
    ("gateway / raw tokens/s", "gateway / raw tokens/s", ">= 0.89"),
    ("added time to first token", "added time to first token (ms)", "after - before <= +20 ms"),
    ("embedding pipeline (ChunksReady -> DocumentIndexed)", "embed service, chunks/s", ""),
    ("raw ONNX Runtime embedding, same chunks", "raw ONNX Runtime, chunks/s", ""),
    ("chat via gateway: tokens/s (median)", "gateway tokens/s", ""),
    ("raw onnxruntime-genai: tokens/s", "raw tokens/s", ""),
)


def prepare_before(rev: str, where: Path) -> Path:
    """A worktree of ``rev`` with its own environment; returns its root."""
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev], check=True)
    subprocess.run(["bash", "scripts/setup.sh"], cwd=where, check=True)
    return where


def run_bench(root: Path, model_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    """One run of tests.bench.run in the checkout at ``root``; its table's numbers by measure."""
    command = [
        str(root / ".venv" / "bin" / "python"), "-m", "tests.bench.run",
        "--chunks", str(args.chunks), "--per-doc", str(args.per_doc), "--chat-runs", str(args.chat_runs),
    ]
    env = {**os.environ, "GYRE_MODEL_DIR": str(model_dir)}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark in {root} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    figures = {}
    for line in result.stdout.splitlines():
        match = ROW.match(line.strip())
        if match:
            figures[match["measure"]] = float(match["value"])
    return figures


def run_latency(root: Path, count: int) -> dict[str, float]:
    """This checkout's ``bus_latency`` probe run with ``root``'s code (its APIs predate the move)."""
    command = [str(root / ".venv" / "bin" / "python"), str(REPO / "tests" / "bench" / "bus_latency.py"), str(count)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"latency probe in {root} failed:\n{result.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return {f"publish -> handler start {k.removesuffix('_ms')}": v for k, v in figures.items()}


def table(before: list[dict[str, float]], after: list[dict[str, float]]) -> list[str]:
    rows = [
        "| measure | before (median) | after (median) | after - before | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, label, target in MEASURES:
        b = statistics.median(run[key] for run in before)
        a = statistics.median(run[key] for run in after)
        rows.append(f"| {label} | {b:.2f} | {a:.2f} | {a - b:+.2f} | {target} |")
    runs = ", ".join(
        f"{side} {run['pipeline / raw']:.2f}/{run['gateway / raw tokens/s']:.2f}/{run['added time to first token']:.0f}"
        for side, runs_ in (("before", before), ("after", after)) for run in runs_
    )
    rows += ["", f"Each run (embed ratio / tokens ratio / added TTFT ms): {runs}."]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default=BEFORE)
    parser.add_argument("--rounds", type=int, default=2, help="runs per side, alternating")
    parser.add_argument("--chunks", type=int, default=512)
    parser.add_argument("--per-doc", type=int, default=16)
    parser.add_argument("--chat-runs", type=int, default=7)
    parser.add_argument("--messages", type=int, default=300, help="messages of the latency probe per run")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    model_dir = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models")).resolve()
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    started = dt.datetime.now(dt.UTC)
    before: list[dict[str, float]] = []
    after: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="gyre-before-") as temp:
        old = prepare_before(args.before, Path(temp) / "checkout")
        try:
            for round_ in range(args.rounds):
                order = ((old, before), (REPO, after)) if round_ % 2 == 0 else ((REPO, after), (old, before))
                for root, into in order:
                    into.append({**run_bench(root, model_dir, args), **run_latency(root, args.messages)})
                    print(f"round {round_ + 1}: {'before' if root == old else 'after'} {into[-1]}", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(old)], check=False)
    minutes = (dt.datetime.now(dt.UTC) - started).total_seconds() / 60
    load = os.getloadavg()[0]
    section = [
        f"{MARKER} ({started.strftime('%Y-%m-%d %H:%M UTC')})",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}. Command: "
        f"`just bench-bus` (`python -m tests.bench.bus_before_after --rounds {args.rounds} --chunks {args.chunks} "
        f"--chat-runs {args.chat_runs}`): before = {args.before} (own worktree and environment), after = {head}; "
        f"issue 2's harness (`tests.bench.run`) in each, alternating, {args.rounds} runs a side; {minutes:.0f} min, "
        f"load average at the end {load:.1f}. The embed ratio is the embed service's chunks/s (ChunksReady -> "
        "DocumentIndexed, 16 chunks an event) over raw ONNX Runtime on the same chunks right after; the chat "
        "figures are medians of the runs after one warm-up, retrieval off, SmolLM2-135M int4, greedy, 96 tokens. "
        f"The latency probe (`tests/bench/bus_latency.py`, the same file run with each checkout's code) publishes "
        f"{args.messages} DocumentSubmitted one at a time to a running ingest consumer whose handler only notes "
        "the time: what the bus itself adds to each event's trip, free of the model's noise.",
        "",
        *table(before, after),
        "",
    ]
    text = "\n".join(section)
    print(text)
    if args.write:
        write_section(args.write, text, MARKER)


if __name__ == "__main__":
    main()
