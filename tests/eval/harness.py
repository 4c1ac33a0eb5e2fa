"""Drives the real stack for answer-quality runs: ingest a corpus, put a golden set, run evaluations over HTTP.

Shared by the CI gate (`just eval`, tests/eval/gate_check.py) and the answer-quality benchmark
(`just bench-answers`, tests/bench/answers.py). Everything goes through the gateway, as a user's
client would; the evaluation itself runs in the evaluate service on the live pipeline.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec

from gyre_cli.stack import SERVICES, LocalStack
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import load_settings
from gyre_runtime.state.golden_sets import GoldenItem, dump_golden_jsonl
from gyre_runtime.state.prompts import DEFAULT_PROMPT_NAME, LEGACY_TEMPLATE, TEMPLATE_FIELDS, PromptRegistry
from tests.support.nats_server import free_port

REPO = Path(__file__).resolve().parents[2]
KEY = "gyre-eval-key"
CONTENT_TYPES = {".html": "text/html", ".htm": "text/html", ".txt": "text/plain", ".md": "text/markdown"}
LEGACY_LABEL = "legacy"


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def running_stack(data_dir: Path, tenants: Sequence[str], extra_env: Mapping[str, str] | None = None) -> Iterator[
    tuple[LocalStack, dict[str, httpx.Client]]
]:
    """The whole stack on free ports; one admin client per tenant (static keys ``<KEY>-<tenant>``)."""
    model_dir = Path(load_settings().model_path).resolve()
    keys = {tenant: f"{KEY}-{tenant}" for tenant in tenants}
    stack = LocalStack(
        data_dir=data_dir, model_dir=model_dir, nats_port=free_port(), nats_monitor_port=free_port(),
        ports={name: free_port() for name in SERVICES},
        extra_env={"GYRE_API_KEYS": ",".join(f"{k}:{t}" for t, k in keys.items()), "GYRE_LOG_LEVEL": "warning",
                   **(extra_env or {})},
    )
    with stack:
        clients = {
            tenant: httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            for tenant, key in keys.items()
        }
        try:
            yield stack, clients
        finally:
            for client in clients.values():
                client.close()


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


async def _label_legacy_prompt(nats_url: str) -> str:
    bus = await connect(load_settings({}, nats_url=nats_url), name="gyre-eval-harness", patient=False)
    try:
        await ensure_topology(bus)
        registry = PromptRegistry(await bus.kv("gyre_prompts"))
        fields = {f: getattr(LEGACY_TEMPLATE, f) for f in TEMPLATE_FIELDS}
        template = await registry.put(DEFAULT_PROMPT_NAME, fields)
        await registry.set_label(DEFAULT_PROMPT_NAME, LEGACY_LABEL, template.version)
        return template.ref
    finally:
        await bus.close()


def label_legacy_prompt(stack: LocalStack) -> str:
    """Store Gyre's first default template as a new version labelled ``legacy`` (the "before" of comparisons)."""
    return asyncio.run(_label_legacy_prompt(stack.nats_url))


def metrics_row(run: Mapping[str, Any], names: Sequence[str]) -> list[str]:
    metrics = run.get("metrics", {})
    return [f"{metrics[n]:.3f}" if n in metrics else "-" for n in names]


def decode_items(data: bytes) -> list[GoldenItem]:
    return [msgspec.json.decode(line, type=GoldenItem) for line in data.splitlines() if line.strip()]
