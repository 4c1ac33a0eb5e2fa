"""`gyre ingest` as a user runs it, against the real gateway on a real nats-server.

The gateway runs in this process under uvicorn; the CLI runs as its own process (the installed
`gyre` script). A stand-in for the ingest service, written here, consumes
``gyre.ingest.submitted`` and writes a verdict to the document registry like the real one:
content holding ``REJECT`` is rejected (``too_short``), ``DUPLICATE`` is rejected as a
``duplicate``, the rest is indexed. Web pages come from a real local HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from gyre_contracts import DocumentSubmitted, Rejection, utc_now
from gyre_gateway.app import create_app
from gyre_runtime.bus.consumer import Handler, MessageContext
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from tests.support.services import fresh_nats, serve_app
from tests.support.web import serving_pages

KEY = "cli-key-tenant-a"
WAIT_S = 30.0
GYRE = str(Path(sys.executable).parent / "gyre")


@dataclass
class Ingested:
    """What the stand-in ingest service received, in order."""

    events: list[DocumentSubmitted] = field(default_factory=list)

    def ids(self) -> list[str]:
        return [e.document_id for e in self.events]


def stand_in_ingest(service: Service, ingested: Ingested) -> Handler:
    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        ingested.events.append(event)
        data = base64.b64decode(event.content or "") if event.content else (event.text or "").encode()
        registry = DocumentRegistry(await service.bus.kv("gyre_documents"))

        def verdict(current: DocumentRecord | None) -> DocumentRecord:
            version = (current.version if current else 0) + 1
            base = DocumentRecord(document_id=event.document_id, tenant=event.tenant, title=event.title,
                                  submission_id=event.submission_id, submitted_at=event.submitted_at)
            if b"DUPLICATE" in data:
                reason = Rejection(code="duplicate", message="same as another")
                return msgspec.structs.replace(base, status="rejected", reasons=[reason])
            if b"REJECT" in data:
                reason = Rejection(code="too_short", message="3 words")
                return msgspec.structs.replace(base, status="rejected", reasons=[reason])
            return msgspec.structs.replace(base, status="indexed", version=version, chunks=1, indexed_at=utc_now())

        await registry.update(event.tenant, event.document_id, verdict)

    return handle


HANDBOOK = b"<html><head><title>Handbook</title></head><body><p>Be kind.</p></body></html>"


@dataclass
class Stack:
    url: str
    ingested: Ingested
    web: str
    data_dir: Path


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with serving_pages({"/handbook.html": ("text/html; charset=utf-8", HANDBOOK)}) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def stack(web: str) -> AsyncIterator[Stack]:
    with fresh_nats("gyre-cli-", api_keys=f"{KEY}:tenant-a") as (_, settings):
        ingested = Ingested()
        ingest = Service("ingest", settings)
        ingest.consume("ingest", stand_in_ingest(ingest, ingested))
        await asyncio.wait_for(ingest.start(), WAIT_S)
        try:
            async with serve_app(create_app(settings)) as url:
                yield Stack(url=url, ingested=ingested, web=web, data_dir=Path(settings.data_dir))
        finally:
            await ingest.stop()


@dataclass
class Run:
    code: int
    out: str
    err: str


async def gyre_ingest(stack: Stack, *args: str, key: str = KEY) -> Run:
    """Run ``gyre ingest`` as its own process (this loop keeps serving the gateway meanwhile)."""
    env = {**os.environ, "GYRE_DATA_DIR": str(stack.data_dir), "GYRE_API_KEY": key}
    process = await asyncio.create_subprocess_exec(
        GYRE, "ingest", "--gateway", stack.url, "--timeout", str(WAIT_S), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), WAIT_S * 2)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def write(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def summary_line(run: Run, label: str) -> str:
    return next(line for line in run.out.splitlines() if line.startswith(f"{label}:"))


async def test_a_folder_is_submitted_and_every_verdict_is_counted(stack: Stack, tmp_path: Path) -> None:
    root = write(tmp_path / "docs", {
        "guide/intro.md": b"# Intro\nWelcome to the handbook.",
        "guide/short.txt": b"REJECT me",
        "copy.md": b"DUPLICATE of intro",
        "logo.png": b"\x89PNG not a document",
    })
    before = len(stack.ingested.events)
    run = await gyre_ingest(stack, str(root), "--state", str(tmp_path / "state.json"))
    assert run.code == 0, run.out + run.err
    assert summary_line(run, "accepted") == "accepted: 1"
    assert summary_line(run, "rejected") == "rejected: 1 (too_short: 1)"
    assert summary_line(run, "duplicates") == "duplicates: 1"
    assert summary_line(run, "unchanged") == "unchanged: 0"
    assert "rejected   guide/short.txt: too_short: 3 words" in run.out
    events = {e.document_id: e for e in stack.ingested.events[before:]}
    assert set(events) == {"guide/intro.md", "guide/short.txt", "copy.md"}  # ids relative to the folder
    intro = events["guide/intro.md"]
    assert base64.b64decode(intro.content or "") == b"# Intro\nWelcome to the handbook."
    assert (intro.content_type, intro.title, intro.tenant) == ("text/markdown", "intro", "tenant-a")
    assert intro.metadata == {"source": str(root / "guide" / "intro.md")}
    state = json.loads((tmp_path / "state.json").read_text())
    (documents,) = [scope["documents"] for scope in state["scopes"].values()]
    assert documents["guide/intro.md"]["status"] == "indexed"
    assert documents["copy.md"] == {"sha256": documents["copy.md"]["sha256"], "status": "rejected",
                                    "reasons": ["duplicate"]}


async def test_a_rerun_skips_what_is_unchanged_and_indexed(stack: Stack, tmp_path: Path) -> None:
    root = write(tmp_path / "docs", {"a.md": b"# A\nalpha", "b.md": b"# B\nbeta", "c.md": b"REJECT"})
    state = str(tmp_path / "state.json")
    first = await gyre_ingest(stack, str(root), "--state", state)
    assert first.code == 0 and summary_line(first, "accepted") == "accepted: 2"
    write(root, {"b.md": b"# B\nbeta, changed", "d.md": b"# D\nnew"})
    before = len(stack.ingested.events)
    second = await gyre_ingest(stack, str(root), "--state", state)
    assert second.code == 0, second.out + second.err
    assert summary_line(second, "unchanged") == "unchanged: 1"
    # Changed and new files are sent, and a rejected one again (rules may have changed); a.md is not.
    assert sorted(stack.ingested.ids()[before:]) == ["b.md", "c.md", "d.md"]
    third = await gyre_ingest(stack, str(root), "--state", state, "--include", "*.md", "--exclude", "c.md")
    assert summary_line(third, "unchanged") == "unchanged: 3" and len(stack.ingested.events) == before + 3


async def test_a_run_that_did_not_see_its_verdicts_is_resumed_without_resending(
    stack: Stack, tmp_path: Path
) -> None:
    root = write(tmp_path / "docs", {"one.md": b"# One", "two.md": b"# Two"})
    state = str(tmp_path / "state.json")
    first = await gyre_ingest(stack, str(root), "--state", state, "--no-wait")
    assert first.code == 0 and "still pending (not waited for): 2" in first.out
    write(root, {"three.md": b"# Three"})
    before = len(stack.ingested.events)
    second = await gyre_ingest(stack, str(root), "--state", state)
    assert second.code == 0, second.out + second.err
    # one.md and two.md were submitted by the first run: the gateway is asked, nothing is resent.
    assert stack.ingested.ids()[before:] == ["three.md"]
    assert summary_line(second, "unchanged") == "unchanged: 2" and summary_line(second, "accepted") == "accepted: 1"


async def test_urls_are_fetched_and_a_failed_fetch_fails_the_run(stack: Stack, tmp_path: Path) -> None:
    page, missing = f"{stack.web}/handbook.html", f"{stack.web}/gone.html"
    before = len(stack.ingested.events)
    run = await gyre_ingest(stack, page, missing, "--state", str(tmp_path / "state.json"))
    assert run.code == 1, run.out + run.err
    assert summary_line(run, "accepted") == "accepted: 1"
    assert summary_line(run, "failed to fetch") == "failed to fetch: 1 (http_404: 1)"
    (event,) = stack.ingested.events[before:]
    assert event.document_id == page and event.content_type == "text/html; charset=utf-8"
    assert base64.b64decode(event.content or "").startswith(b"<html>") and event.metadata == {"source": page}


async def test_a_document_the_gateway_refuses_is_a_failure_named_by_its_code(stack: Stack, tmp_path: Path) -> None:
    # nats-server's default max_payload is 1 MiB: the gateway refuses a larger document with a 413.
    root = write(tmp_path / "docs", {"big.txt": b"x" * (1100 * 1024), "ok.md": b"# fine"})
    run = await gyre_ingest(stack, str(root), "--state", str(tmp_path / "state.json"))
    assert run.code == 1, run.out + run.err
    assert summary_line(run, "failed to submit") == "failed to submit: 1 (document_too_large: 1)"
    assert summary_line(run, "accepted") == "accepted: 1"


async def test_a_refused_api_key_stops_the_run(stack: Stack, tmp_path: Path) -> None:
    root = write(tmp_path / "docs", {"a.md": b"# A"})
    run = await gyre_ingest(stack, str(root), "--state", str(tmp_path / "state.json"), key="wrong-key")
    assert run.code == 1 and "refused the API key" in run.err


async def test_bad_arguments_exit_2_before_anything_is_sent(stack: Stack, tmp_path: Path) -> None:
    before = len(stack.ingested.events)
    run = await gyre_ingest(stack, str(tmp_path / "no-such-folder"))
    assert run.code == 2 and "no such file" in run.err
    assert len(stack.ingested.events) == before
