"""Drives the real stack for answer-quality runs: ingest a corpus, put a golden set, run evaluations over HTTP.

Shared by the CI gate (`just eval`, tests/eval/gate_check.py) and the answer-quality benchmark
(`just bench-answers`, tests/bench/answers.py). Everything goes through the gateway, as a user's
client would; the evaluation itself runs in the evaluate service on the live pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec

from gyre_cli.stack import SERVICES, LocalStack
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import load_settings
from gyre_runtime.state.golden_sets import GoldenItem
from gyre_runtime.state.prompts import DEFAULT_PROMPT_NAME, LEGACY_TEMPLATE, TEMPLATE_FIELDS, PromptRegistry
from tests.support.nats_server import free_port

REPO = Path(__file__).resolve().parents[2]
KEY = "gyre-eval-key"
LEGACY_LABEL = "legacy"


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
