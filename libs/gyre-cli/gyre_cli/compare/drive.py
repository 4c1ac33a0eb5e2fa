"""Drive a running stack over HTTP as a user's client would: ingest pages, put a golden set, run an evaluation.

Used by `gyre models compare` (one private stack per candidate) and by the answer-quality gate and
benchmarks in the test suite.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from gyre_runtime.state.golden_sets import GoldenItem, dump_golden_jsonl

CONTENT_TYPES = {".html": "text/html", ".htm": "text/html", ".txt": "text/plain", ".md": "text/markdown"}


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ingest_pages(client: httpx.Client, root: Path, documents: Sequence[str], timeout_s: float = 1800) -> dict[str, str]:
    """Submit every page (document id = its path under ``root``) and wait until each is indexed or rejected."""
    started = time.perf_counter()
    for document_id in documents:
        path = root / document_id
        body = {
            "id": document_id,
            "content": base64.b64encode(path.read_bytes()).decode("ascii"),
            "content_type": CONTENT_TYPES.get(path.suffix.lower(), "text/plain"),
        }
        response = client.post("/v1/documents", json=body)
        if response.status_code != 202:
            raise RuntimeError(f"{document_id}: {response.status_code} {response.text}")
    pending = set(documents)
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for document_id in sorted(pending):
            status = client.get("/v1/documents/" + httpx.URL(document_id).raw_path.decode()).json().get("status")
            if status in ("indexed", "rejected"):
                statuses[document_id] = status
                pending.discard(document_id)
        if pending:
            time.sleep(1.0)
    if pending:
        raise RuntimeError(f"{len(pending)} documents not indexed within {timeout_s:g}s: {sorted(pending)[:5]}")
    indexed = sum(1 for s in statuses.values() if s == "indexed")
    log(f"{indexed} of {len(documents)} documents indexed in {time.perf_counter() - started:.0f}s")
    return statuses


def put_set(client: httpx.Client, name: str, items: Sequence[GoldenItem]) -> int:
    response = client.put(
        f"/v1/evaluations/sets/{name}", content=dump_golden_jsonl(items),
        headers={"Content-Type": "application/x-ndjson"},
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"putting set {name}: {response.status_code} {response.text}")
    version: int = response.json()["version"]
    return version


def run_evaluation(client: httpx.Client, body: Mapping[str, Any], timeout_s: float = 3600) -> dict[str, Any]:
    """Start an evaluation and wait for it to end; the final run (status completed or failed)."""
    response = client.post("/v1/evaluations", json=dict(body))
    if response.status_code != 202:
        raise RuntimeError(f"starting an evaluation: {response.status_code} {response.text}")
    evaluation_id = response.json()["id"]
    deadline = time.monotonic() + timeout_s
    last = -1
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/v1/evaluations/{evaluation_id}", params={"items": "false"}).json()
        if run.get("status") in ("completed", "failed"):
            full: dict[str, Any] = client.get(f"/v1/evaluations/{evaluation_id}").json()
            return full
        progress = run.get("progress", {})
        if progress.get("done", 0) != last:
            last = progress.get("done", 0)
            log(f"  {evaluation_id}: {last}/{progress.get('total', '?')}")
        time.sleep(2.0)
    raise RuntimeError(f"evaluation {evaluation_id} did not end within {timeout_s:g}s")
