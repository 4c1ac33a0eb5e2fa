"""One candidate, measured: a private stack serving it, the golden set's pages ingested, the evaluate service's run.

Each candidate gets a stack of its own (temporary data folder, free ports, the model store shared
read-only), so nothing of one run leaks into the next: not the index, not a cache, not the memory
high-water mark. The evaluation itself is the evaluate service's (the same metrics as `gyre eval`);
what the stack measures on top is the memory of the process that runs the candidate (generate for
a generator, embed for an embedder: its peak resident set, ``VmHWM``, where /proc has it).

A candidate whose stack does not start or whose evaluation fails becomes a failed row with the
reason; the next candidate runs as usual.
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gyre_cli.compare.candidates import Candidate
from gyre_cli.compare.drive import ingest_pages, log, put_set, run_evaluation
from gyre_cli.stack import SERVICES, LocalStack
from gyre_runtime.state.golden_sets import GoldenItem

TENANT = "compare"
KEY = "gyre-compare-key"
SET_NAME = "compare"


@dataclass
class Row:
    """What one candidate scored; ``error`` set when its run failed (the other figures are then empty)."""

    candidate: Candidate
    metrics: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int | None = None
    tokens_per_s: float | None = None  # completion tokens over the whole answer time, median of items
    model_version: str | None = None
    ingest_s: float | None = None  # the pages indexed: for an embedder, its cost of indexing
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def peak_rss(pid: int) -> int | None:
    """The process's peak resident set in bytes (Linux /proc); None where the system does not say."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


def answer_rate(items: Sequence[Mapping[str, Any]]) -> float | None:
    """Median completion tokens per second of answer time over the items that generated something."""
    scores = [item.get("score", item) for item in items]  # the evaluate service's rows: {"score": {...}, ...}
    rates = [
        score["completion_tokens"] / (score["total_ms"] / 1000.0)
        for score in scores
        if isinstance(score, dict) and score.get("completion_tokens") and score.get("total_ms")
    ]
    return statistics.median(rates) if rates else None


def endpoint_problem(candidate: Candidate, timeout_s: float = 10.0) -> str | None:
    """Why a remote candidate cannot be measured (its server does not answer), before a stack is started for it."""
    base_url = candidate.env.get("GYRE_OPENAI_BASE_URL")
    if candidate.local or not base_url:
        return None
    headers = {"Authorization": f"Bearer {candidate.env['GYRE_OPENAI_API_KEY']}"} \
        if candidate.env.get("GYRE_OPENAI_API_KEY") else {}
    try:
        httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"endpoint unreachable: {type(exc).__name__}: {exc}"
    return None


def run_candidate(
    candidate: Candidate,
    *,
    items: Sequence[GoldenItem],
    documents_root: Path,
    documents: Sequence[str],
    model_root: Path,
    extra_env: Mapping[str, str] | None = None,
    timeout_s: float = 3600,
) -> Row:
    """``candidate`` through the evaluate service on a stack of its own; never raises for a failed run."""
    started = time.perf_counter()
    row = Row(candidate)
    unreachable = endpoint_problem(candidate)
    if unreachable:
        row.error = unreachable
        log(f"{candidate.label}: {unreachable}")
        return row
    try:
        with tempfile.TemporaryDirectory(prefix="gyre-compare-") as data_dir:
            stack = LocalStack(
                data_dir=Path(data_dir), model_dir=model_root, nats_port=free_port(), nats_monitor_port=free_port(),
                ports={name: free_port() for name in SERVICES},
                extra_env={"GYRE_API_KEYS": f"{KEY}:{TENANT}", "GYRE_LOG_LEVEL": "warning",
                           **(extra_env or {}), **candidate.env},
            )
            with stack, httpx.Client(
                base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120
            ) as client:
                log(f"{candidate.label}: stack up, ingesting {len(documents)} pages")
                ingest_started = time.perf_counter()
                ingest_pages(client, documents_root, documents, timeout_s=timeout_s)
                row.ingest_s = time.perf_counter() - ingest_started
                put_set(client, SET_NAME, items)
                run = run_evaluation(client, {"set": SET_NAME}, timeout_s=timeout_s)
                serving = "generate" if candidate.role == "generator" else "embed"
                row.peak_rss_bytes = peak_rss(stack.processes[serving].pid)
        row.seconds = time.perf_counter() - started
        if run.get("status") != "completed":
            row.error = f"evaluation failed: {run.get('reason') or run.get('status')}"
            return row
        row.metrics = {k: float(v) for k, v in run.get("metrics", {}).items()}
        row.model_version = run.get("model_version")
        row.tokens_per_s = answer_rate(run.get("items", []))
    except Exception as exc:  # one candidate's failure is its row, not the comparison's end
        row.seconds = time.perf_counter() - started
        row.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        log(f"{candidate.label}: failed: {row.error}")
    return row
