"""Benchmark of issue 4: generation through the gateway, under concurrency, and on the three backends.

One run measures, each figure against a baseline measured in the same run:

1. A single streamed chat through the gateway (retrieval off, so the model sees exactly the raw
   prompt) against the raw backend (`OnnxGenaiBackend` in this process, same model, threads,
   prompt and greedy parameters): time to first token and tokens/s, runs interleaved so the
   machine's background load hits both alike. Where the added time goes: one probe pass taps the
   bus (`gyre.generate.>`) and times each hop. Retrieval is reported apart: a few questions with
   retrieval on over a few ingested documents, with `GenerationCompleted.timings`.
2. 1, 4 and 8 concurrent streamed requests through the gateway, and the raw backend at the same
   concurrency: aggregate tokens/s (all tokens / wall time) and p95 request latency; from them, issue
   10's batching targets (8 streams' aggregate over one stream's, 4 requests' time over one's).
3. The three Generator backends side by side through the Generator port (one harness): onnx
   in-process, `openai` pointed at this run's Gyre gateway, `triton` against a real tritonserver
   (deploy/triton: setup.sh, run.sh) on free ports.

Run: `just bench-generation` (or `.venv/bin/python -m tests.bench.generation --write docs/benchmarks.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from nats.aio.msg import Msg

from gyre_cli.stack import SERVICES, LocalStack
from gyre_contracts import GenerationCompleted, GenerationFailed, SamplingParams, TokenDelta, decode_event
from gyre_generate.delta_coalescer import DELTA_INTERVAL_MAX_S, DELTA_INTERVAL_S
from gyre_generate.prompting import SYSTEM_WITHOUT_SOURCES
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import load_settings
from gyre_runtime.generation import ChatTurn, Generator
from gyre_runtime.generation.onnx import OnnxGenaiBackend
from gyre_runtime.generation.openai_compat import OpenAICompatibleBackend
from gyre_runtime.generation.triton import TritonBackend, served_version
from gyre_runtime.state.generations import GenerationStore
from tests.support.nats_server import free_port

REPO = Path(__file__).resolve().parents[2]
KEY = "bench-generation-key"
TENANT = "bench"
THREADS = 2
MODEL = "smollm2-135m-instruct"
QUESTION = "Explain in a few sentences why the sky is blue."
MAX_TOKENS = 96
# The gateway adds the default template's instructions when retrieval is off: the raw backends get them here.
RAW_MESSAGES: list[ChatTurn] = [("system", SYSTEM_WITHOUT_SOURCES), ("user", QUESTION)]
PARAMS = SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0)
RETRIEVAL_DOCS = ("docs/architecture.md", "docs/ingest-events.md", "README.md")
RETRIEVAL_QUESTIONS = (
    "How does the gateway stream an answer to the client?",
    "What happens to a document after it is submitted?",
    "Which events does the ingest service publish?",
)
LEVELS = (1, 4, 8)
StreamMessage = TokenDelta | GenerationCompleted | GenerationFailed
SECTION_HEADING = "## Issue 4: generation through the gateway, concurrency and three backends"
BEGIN = "<!-- bench-generation:begin (tests/bench/generation.py rewrites everything up to the end marker) -->"
END = "<!-- bench-generation:end -->"
TRITON_READY_S = 180.0
# Each measurement starts on a quiet machine: after an answer, its side keeps the CPU busy for a
# while (onnxruntime's spinning threads, the stack's bookkeeping: records, events, the monitor),
# which measured 15-35 ms on the next one's first token when the other side came next.
SETTLE_S = 0.3


def log(message: str) -> None:
    print(f"[bench-generation {time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(RuntimeError):
    pass


@dataclass
class Sample:
    """One streamed generation as its consumer saw it."""

    started: float
    first: float
    last: float
    done: float
    tokens: int
    text: str
    chunks: int
    request_id: str = ""

    @property
    def ttft_ms(self) -> float:
        return (self.first - self.started) * 1000

    @property
    def total_ms(self) -> float:
        return (self.done - self.started) * 1000

    @property
    def tokens_per_s(self) -> float:
        """Decode rate after the first token: (tokens - 1) / (last content - first content)."""
        return (self.tokens - 1) / (self.last - self.first) if self.last > self.first else 0.0


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def p95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[18]


# --- the two ways of streaming: the Generator port, and the gateway's SSE ------------------------


async def port_sample(generator: Generator, messages: Sequence[ChatTurn], params: SamplingParams) -> Sample:
    started = time.perf_counter()
    times: list[float] = []
    pieces: list[str] = []
    stream = generator.stream(messages, params)
    async for delta in stream:
        times.append(time.perf_counter())
        pieces.append(delta)
    done = time.perf_counter()
    if not pieces:
        raise BenchError(f"{generator.version}: no text (finish_reason {stream.finish_reason})")
    return Sample(started, times[0], times[-1], done, stream.completion_tokens, "".join(pieces), len(pieces))


def chat_body(question: str, *, retrieval: bool, max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    return {
        "model": MODEL, "messages": [{"role": "user", "content": question}], "stream": True,
        "max_tokens": max_tokens, "temperature": 0, "retrieval": retrieval,
    }


async def gateway_sample(client: httpx.AsyncClient, body: dict[str, Any]) -> Sample:
    started = time.perf_counter()
    times: list[float] = []
    pieces: list[str] = []
    tokens = 0
    request_id = ""
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise BenchError(f"gateway answered {response.status_code}: {(await response.aread()).decode()[:500]}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise BenchError(f"gateway stream error: {chunk['error']}")
            request_id = chunk.get("id", request_id)
            if chunk.get("usage"):
                tokens = int(chunk["usage"]["completion_tokens"])
            content = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
            if content:
                times.append(time.perf_counter())
                pieces.append(content)
    done = time.perf_counter()
    if not pieces:
        raise BenchError("the gateway streamed no text")
    return Sample(started, times[0], times[-1], done, tokens, "".join(pieces), len(pieces), request_id)


def gateway_client(stack: LocalStack) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300,
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
    )


# --- 1. single stream: gateway vs raw, the hops, retrieval apart ---------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds that named processes spend inside measured blocks, added up over the blocks."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.spent = dict.fromkeys(pids, 0.0)
        self.blocks = 0

    @contextmanager
    def measure(self) -> Iterator[None]:
        before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        yield
        for name, pid in self.pids.items():
            self.spent[name] += cpu_seconds(pid) - before[name]
        self.blocks += 1

    def per_block_ms(self) -> dict[str, float]:
        return {name: spent * 1000 / max(self.blocks, 1) for name, spent in self.spent.items()}


@dataclass
class SingleStream:
    gateway: list[Sample]
    raw: list[Sample]
    handler_ttft_ms: list[float]  # generate's own clock: handler start -> the model's first token
    same_text: bool
    gateway_cpu_ms: dict[str, float]  # CPU per answer by process, gateway runs
    raw_cpu_ms: float  # CPU per answer of this process, raw runs


async def single_stream(stack: LocalStack, raw: Generator, store: GenerationStore, runs: int) -> SingleStream:
    gateway: list[Sample] = []
    raws: list[Sample] = []
    handler: list[float] = []
    body = chat_body(QUESTION, retrieval=False)
    # Every process of the stack: the monitor, for one, hears every message on the bus.
    stack_pids = {name: process.pid for name, process in stack.processes.items()}
    gateway_cpu = CpuMeter({**stack_pids, "HTTP client (benchmark process)": os.getpid()})
    raw_cpu = CpuMeter({"raw": os.getpid()})

    async def on_gateway() -> None:
        await asyncio.sleep(SETTLE_S)
        with gateway_cpu.measure():
            gateway.append(await gateway_sample(client, body))

    async def on_raw() -> None:
        await asyncio.sleep(SETTLE_S)
        with raw_cpu.measure():
            raws.append(await port_sample(raw, RAW_MESSAGES, PARAMS))

    async with gateway_client(stack) as client:
        await gateway_sample(client, body)  # warm-up, both sides
        await port_sample(raw, RAW_MESSAGES, PARAMS)
        for run in range(runs):
            # Alternate which side goes first, so a drift in background load hits both alike.
            for side in (on_raw, on_gateway) if run % 2 else (on_gateway, on_raw):
                await side()
            g, r = gateway[-1], raws[-1]
            log(f"run {run}: gateway TTFT {g.ttft_ms:.1f} ms {g.tokens_per_s:.1f} tok/s ({g.chunks} chunks); "
                f"raw TTFT {r.ttft_ms:.1f} ms {r.tokens_per_s:.1f} tok/s")
    for sample in gateway:
        completed = await store.get(sample.request_id)
        if completed is not None:
            handler.append(completed.timings.time_to_first_token_ms)
    same = all(s.text == raws[0].text for s in gateway + raws)
    return SingleStream(gateway, raws, handler, same, gateway_cpu.per_block_ms(), raw_cpu.per_block_ms()["raw"])


@dataclass
class Hops:
    """Medians, in ms, of where a streamed request's first token spends its time."""

    to_load_question: float  # HTTP request sent -> the gateway's load question seen on the bus
    to_request_published: float  # load question -> GenerationRequested seen on the bus
    to_first_delta: float  # GenerationRequested -> first TokenDelta seen on the bus
    handler_ttft: float  # of which: generate handler start -> the model's first token (generate's clock)
    to_client: float  # first TokenDelta on the bus -> first SSE content chunk at the client
    ttft: float  # the whole: HTTP request sent -> first SSE content chunk
    deltas_per_answer: float  # TokenDelta messages per answer
    tokens_per_answer: float


class BusTap:
    """Arrival times of the generate subjects at a subscriber in this process."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.load_questions: list[float] = []
        self.requested: dict[str, float] = {}
        self.first_delta: dict[str, float] = {}
        self.deltas: dict[str, int] = {}
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.bus.nc.subscribe(self.bus.subject("generate.>"), cb=self._on_message)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        subject = msg.subject.removeprefix(self.bus.subject(""))
        if subject == "generate.load":
            self.load_questions.append(now)
        elif subject == "generate.requested":
            self.requested.setdefault((msg.headers or {}).get("Nats-Msg-Id", ""), now)
        elif subject.startswith("generate.stream."):
            request_id = subject.removeprefix("generate.stream.")
            if isinstance(decode_event(msg.data, StreamMessage, dict(msg.headers or {})), TokenDelta):
                self.first_delta.setdefault(request_id, now)
                self.deltas[request_id] = self.deltas.get(request_id, 0) + 1


async def probe_hops(stack: LocalStack, bus: Bus, store: GenerationStore, runs: int) -> Hops:
    tap = BusTap(bus)
    await tap.start()
    rows: list[tuple[float, ...]] = []
    body = chat_body(QUESTION, retrieval=False)
    try:
        async with gateway_client(stack) as client:
            for _ in range(runs):
                await asyncio.sleep(SETTLE_S)
                sample = await gateway_sample(client, body)
                await asyncio.sleep(0.05)  # let the tap see the last messages
                rid = sample.request_id
                load = min((t for t in tap.load_questions if t >= sample.started), default=None)
                requested, first_delta = tap.requested.get(rid), tap.first_delta.get(rid)
                completed = await store.get(rid)
                if load is None or requested is None or first_delta is None or completed is None:
                    log(f"probe: incomplete timeline for {rid}; skipped")
                    continue
                rows.append((
                    (load - sample.started) * 1000, (requested - load) * 1000, (first_delta - requested) * 1000,
                    completed.timings.time_to_first_token_ms, (sample.first - first_delta) * 1000, sample.ttft_ms,
                    float(tap.deltas.get(rid, 0)), float(sample.tokens),
                ))
    finally:
        await tap.stop()
    if not rows:
        raise BenchError("probe: no complete timeline")
    return Hops(*(median([row[i] for row in rows]) for i in range(8)))


@dataclass
class RetrievalRun:
    retrieval_ms: list[float] = field(default_factory=list)
    handler_ttft_ms: list[float] = field(default_factory=list)
    gateway_ttft_ms: list[float] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    search_ms: list[float] = field(default_factory=list)  # POST /v1/search (hybrid), as a client sees it
    cited: int = 0
    answers: int = 0


async def ingest_docs(stack: LocalStack, bus: Bus) -> int:
    """Submit a few of this repository's documents and wait until each is indexed; returns the count."""
    ids = {f"bench-doc-{i}": REPO / path for i, path in enumerate(RETRIEVAL_DOCS) if (REPO / path).exists()}
    waiting = set(ids)
    done = asyncio.Event()

    async def on_indexed(msg: Msg) -> None:
        waiting.discard((msg.headers or {}).get("ce-subject", ""))
        if not waiting:
            done.set()

    sub = await bus.nc.subscribe(bus.subject("index.updated"), cb=on_indexed)
    try:
        async with gateway_client(stack) as client:
            for document_id, path in ids.items():
                body = {"id": document_id, "text": path.read_text(), "content_type": "text/markdown"}
                response = await client.post("/v1/documents", json=body)
                if response.status_code != 202:
                    raise BenchError(f"ingesting {path}: {response.status_code} {response.text[:300]}")
        await asyncio.wait_for(done.wait(), 300)
    finally:
        await sub.unsubscribe()
    return len(ids)


async def with_retrieval(stack: LocalStack, store: GenerationStore) -> RetrievalRun:
    run = RetrievalRun()
    async with gateway_client(stack) as client:
        await gateway_sample(client, chat_body(RETRIEVAL_QUESTIONS[0], retrieval=True))  # warm-up
        for question in RETRIEVAL_QUESTIONS:
            await asyncio.sleep(SETTLE_S)
            sample = await gateway_sample(client, chat_body(question, retrieval=True))
            completed = await store.get(sample.request_id)
            run.answers += 1
            run.gateway_ttft_ms.append(sample.ttft_ms)
            started = time.perf_counter()
            response = await client.post("/v1/search", json={"query": question, "top_k": 4, "mode": "hybrid"})
            response.raise_for_status()
            run.search_ms.append((time.perf_counter() - started) * 1000)
            if completed is not None:
                run.retrieval_ms.append(completed.timings.retrieval_ms)
                run.handler_ttft_ms.append(completed.timings.time_to_first_token_ms)
                run.prompt_tokens.append(completed.usage.prompt_tokens)
                run.cited += bool(completed.citations)
    return run


# --- 2. concurrency ---------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    aggregate_tokens_per_s: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    walls_ms: list[float] = field(default_factory=list)  # per round: first start -> last end


async def burst(level: Level, start_one: Callable[[], Awaitable[Sample]]) -> None:
    """`concurrency` generations started together; aggregate = all tokens / (first start -> last end)."""
    await asyncio.sleep(SETTLE_S)
    samples = await asyncio.gather(*(start_one() for _ in range(level.concurrency)))
    wall = max(s.done for s in samples) - min(s.started for s in samples)
    level.aggregate_tokens_per_s.append(sum(s.tokens for s in samples) / wall)
    level.walls_ms.append(wall * 1000)
    level.latencies_ms += [s.total_ms for s in samples]
    level.ttft_ms += [s.ttft_ms for s in samples]


async def concurrency(
    stack: LocalStack, raw: Generator, rounds_for: Callable[[int], int]
) -> tuple[list[Level], list[Level]]:
    gateway_levels: list[Level] = []
    raw_levels: list[Level] = []
    body = chat_body(QUESTION, retrieval=False)
    async with gateway_client(stack) as client:
        for c in LEVELS:
            gw, rw = Level(c), Level(c)
            for round_ in range(rounds_for(c)):
                sides = [
                    (gw, lambda: gateway_sample(client, body)), (rw, lambda: port_sample(raw, RAW_MESSAGES, PARAMS)),
                ]
                for level, start_one in sides if round_ % 2 == 0 else reversed(sides):
                    await burst(level, start_one)
            gateway_levels.append(gw)
            raw_levels.append(rw)
            log(f"concurrency {c}: gateway {median(gw.aggregate_tokens_per_s):.1f} tok/s, "
                f"raw {median(rw.aggregate_tokens_per_s):.1f} tok/s")
    return gateway_levels, raw_levels


# --- 3. three backends --------------------------------------------------------------------------


@dataclass
class BackendRun:
    name: str
    version: str
    samples: list[Sample] = field(default_factory=list)
    error: str = ""
    cpu_ms: float = float("nan")  # per answer: every process the backend involves, this one included


@dataclass(frozen=True)
class TritonServer:
    url: str  # gRPC host:port
    pid: int


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (tritonserver starts one Python stub process per model instance)."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return pids


@contextmanager
def triton_server(model_dir: Path) -> Iterator[TritonServer]:
    """deploy/triton/setup.sh, then run.sh on free ports (run.sh execs the server: same pid)."""
    started = time.perf_counter()
    setup = subprocess.run(["bash", str(REPO / "deploy/triton/setup.sh")], capture_output=True, text=True,
                           timeout=900, check=False)
    if setup.returncode != 0:
        raise BenchError(f"deploy/triton/setup.sh failed ({setup.returncode}): {setup.stderr[-1500:]}")
    grpc_port, http_port, metrics_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="gyre-bench-triton-") as tmp:
        log_path = Path(tmp) / "tritonserver.log"
        env = {**os.environ, "GYRE_TRITON_MODEL_DIR": str(model_dir), "GYRE_TRITON_THREADS": str(THREADS)}
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                ["bash", str(REPO / "deploy/triton/run.sh"), "--grpc-port", str(grpc_port), "--http-port",
                 str(http_port), "--metrics-port", str(metrics_port), "--exit-timeout-secs=10"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + TRITON_READY_S
            ready = f"http://127.0.0.1:{http_port}/v2/models/gyre_llm/ready"
            while True:
                if process.poll() is not None:
                    raise BenchError(f"tritonserver exited ({process.returncode}): {log_path.read_text()[-1500:]}")
                try:
                    with urllib.request.urlopen(ready, timeout=2) as response:
                        if response.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    tail = log_path.read_text()[-1500:]
                    raise BenchError(f"tritonserver not ready in {TRITON_READY_S:.0f} s: {tail}")
                time.sleep(0.2)
            log(f"tritonserver ready in {time.perf_counter() - started:.1f} s (setup included)")
            yield TritonServer(f"127.0.0.1:{grpc_port}", process.pid)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


async def three_backends(
    raw: Generator, stack: LocalStack, server: TritonServer | None, triton_error: str, model_dir: Path,
    runs: int,
) -> list[BackendRun]:
    openai_backend = OpenAICompatibleBackend(
        f"{stack.gateway_url}/v1", MODEL, api_key=KEY, extra_body={"retrieval": False}
    )
    # The Gyre gateway puts the template's instructions in front itself: it gets the user turn alone,
    # so the model behind every backend sees the same prompt.
    here = {"benchmark process": os.getpid()}
    stack_pids = {name: process.pid for name, process in stack.processes.items()}
    entries: list[tuple[BackendRun, Generator | None, Sequence[ChatTurn], CpuMeter]] = [
        (BackendRun("onnx (in-process)", raw.version), raw, RAW_MESSAGES, CpuMeter(here)),
        (BackendRun("openai -> Gyre gateway", openai_backend.version), openai_backend, [("user", QUESTION)],
         CpuMeter({**here, **stack_pids})),
    ]
    triton: TritonBackend | None = None
    if server is not None:
        try:
            version = served_version(server.url, "gyre_llm")
            triton = TritonBackend(server.url, "gyre_llm", model_dir, model_version=version)
            tree = {f"triton {pid}": pid for pid in process_tree(server.pid)}
            entries.append((BackendRun("triton (tritonserver, gRPC)", triton.version), triton, RAW_MESSAGES,
                            CpuMeter({**here, **tree})))
        except Exception as exc:
            triton_error = f"{type(exc).__name__}: {exc}"
    if triton is None:
        entries.append((BackendRun("triton (tritonserver, gRPC)", "-", error=triton_error), None, RAW_MESSAGES,
                        CpuMeter(here)))
    try:
        for run in range(runs + 1):  # run 0 warms each up
            order = entries if run % 2 == 0 else list(reversed(entries))
            for result, generator, messages, meter in order:
                if generator is None or result.error:
                    continue
                await asyncio.sleep(SETTLE_S)
                try:
                    if run:
                        with meter.measure():
                            result.samples.append(await port_sample(generator, messages, PARAMS))
                    else:
                        await port_sample(generator, messages, PARAMS)
                except Exception as exc:
                    result.error = f"{type(exc).__name__}: {exc}"
    finally:
        await openai_backend.close()
        if triton is not None:
            await triton.close()
    for result, _, _, meter in entries:
        if meter.blocks:
            result.cpu_ms = sum(meter.per_block_ms().values())
    return [entry[0] for entry in entries]


# --- the report ---------------------------------------------------------------------------------


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"  # NaN -> n/a


def report(
    args: argparse.Namespace, single: SingleStream, hops: Hops, retrieval: RetrievalRun, docs: int,
    levels: tuple[list[Level], list[Level]], backends: list[BackendRun], duration_s: float,
    loads: dict[str, float],
) -> str:
    gw_ttft = median([s.ttft_ms for s in single.gateway])
    raw_ttft = median([s.ttft_ms for s in single.raw])
    gw_rate = median([s.tokens_per_s for s in single.gateway])
    raw_rate = median([s.tokens_per_s for s in single.raw])
    pair_ratio = median([g.tokens_per_s / r.tokens_per_s for g, r in zip(single.gateway, single.raw, strict=True)])
    pair_added = median([g.ttft_ms - r.ttft_ms for g, r in zip(single.gateway, single.raw, strict=True)])
    chunks = median([s.chunks for s in single.gateway])
    gateway_cpu = sum(single.gateway_cpu_ms.values())
    extra_cpu = gateway_cpu - single.raw_cpu_ms
    gen_extra = single.gateway_cpu_ms.get("generate", 0.0) - single.raw_cpu_ms
    others_cpu = gateway_cpu - single.gateway_cpu_ms.get("generate", 0.0)
    raw_wall = median([s.total_ms for s in single.raw])
    tokens = median([s.tokens for s in single.gateway])
    # The target is judged on the less favourable of the two estimates.
    rate_worst = min(gw_rate / raw_rate, pair_ratio)
    added_worst = max(gw_ttft - raw_ttft, pair_added)
    rate_ok = f"{rate_worst:.3f}: {'met' if rate_worst >= 0.9 else 'missed'}"
    ttft_ok = f"+{added_worst:.1f} ms: {'met' if added_worst <= 20 else 'missed'}"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_text = ", ".join(f"{k} {v:.1f}" for k, v in loads.items())
    lines = [
        SECTION_HEADING,
        BEGIN,
        "",
        f"Run {stamp}, {duration_s / 60:.1f} min in all. Machine: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, shared with other work (1-minute load average: {load_text}); "
        f"ONNX threads {THREADS}. Command: `just bench-generation` (`python -m tests.bench.generation "
        f"--runs {args.runs} --write docs/benchmarks.md`).",
        f"Model: SmolLM2-135M-Instruct int4 (onnxruntime-genai), greedy, max_tokens {MAX_TOKENS}, question "
        f"\"{QUESTION}\"; the raw side gets the same ChatML prompt the gateway's generate service builds "
        f"with retrieval off (same text generated: {'yes' if single.same_text else 'NO'}). Gateway figures: an "
        "HTTP client on loopback reading the SSE stream. tokens/s = (completion tokens - 1) / (first -> last "
        "content), time to first token (TTFT) = request sent -> first content. Medians; runs interleaved "
        f"(gateway, raw, raw, gateway, ...) so background load hits both alike, each started {SETTLE_S:g} s after "
        "the previous one ended (the previous answer's aftermath otherwise lands on its first token).",
        "",
        "### Single stream: gateway vs raw backend",
        "",
        "| measure | gateway | raw `OnnxGenaiBackend` | gateway vs raw (of medians; median of run pairs) | target |",
        "| --- | --- | --- | --- | --- |",
        f"| tokens/s (median of {len(single.gateway)}) | {fmt(gw_rate)} | {fmt(raw_rate)} | "
        f"{gw_rate / raw_rate:.3f} (paired runs: {pair_ratio:.3f}) | >= 0.90 (worse estimate {rate_ok}) |",
        f"| time to first token | {fmt(gw_ttft)} ms | {fmt(raw_ttft)} ms | +{fmt(gw_ttft - raw_ttft)} ms "
        f"(paired runs: +{fmt(pair_added)} ms) | <= +20 ms (worse estimate {ttft_ok}) |",
        f"| end to end, {fmt(tokens, 0)} tokens | {fmt(median([s.total_ms for s in single.gateway]), 0)} ms | "
        f"{fmt(median([s.total_ms for s in single.raw]), 0)} ms | | |",
        f"| SSE content chunks per answer | {fmt(chunks, 0)} | {fmt(median([s.chunks for s in single.raw]), 0)} "
        "deltas | | |",
        "",
        f"Where the first token's time goes through the gateway (probe pass of {args.probe_runs} runs with a "
        "subscriber on `gyre.generate.>` in the benchmark process; medians, ms):",
        "",
        "| hop | ms |",
        "| --- | --- |",
        f"| HTTP request -> gateway's load question (`gyre.generate.load`) on the bus | {fmt(hops.to_load_question)} |",
        f"| load reply, then GenerationRequested published (JetStream) | {fmt(hops.to_request_published)} |",
        f"| GenerationRequested -> first TokenDelta on the bus | {fmt(hops.to_first_delta)} |",
        f"| of which generate's handler start -> the model's first token (generate's clock) | "
        f"{fmt(hops.handler_ttft)} |",
        f"| first TokenDelta -> first SSE chunk at the client | {fmt(hops.to_client)} |",
        f"| for scale: one decode step at the raw rate | {fmt(1000 / raw_rate)} |",
        f"| whole TTFT in the probe runs (raw backend: {fmt(raw_ttft)}) | {fmt(hops.ttft)} |",
        f"| TokenDelta messages per answer ({fmt(hops.tokens_per_answer, 0)} tokens) | "
        f"{fmt(hops.deltas_per_answer, 0)} |",
        "",
        "CPU time per answer (user + system of each process, added up over the measured runs; onnxruntime's "
        "spinning threads make the model's share grow with contention, so compare within a run). What the "
        "gateway path spends beyond the model runs on the same 2 cores as the model's two threads:",
        "",
        "| process | CPU ms per answer |",
        "| --- | --- |",
        *[f"| gateway path: {name} | {fmt(ms, 0)} |" for name, ms in single.gateway_cpu_ms.items()],
        f"| gateway path, all | {fmt(sum(single.gateway_cpu_ms.values()), 0)} |",
        f"| raw backend (model in the benchmark process) | {fmt(single.raw_cpu_ms, 0)} |",
        "",
        f"Where the tokens/s gap goes: beyond what the raw side spends, the gateway path burns {fmt(extra_cpu, 0)} ms "
        f"of CPU per answer ({fmt(others_cpu, 0)} ms in the other processes of the stack and the client, for "
        f"{fmt(chunks, 0)} SSE chunks; generate {fmt(gen_extra, 0)} ms beyond the model: its event loop runs the "
        "answer guard and publishes TokenDeltas, sharing the GIL with the thread that steps the model). The "
        "model's two onnxruntime threads occupy both cores, so that work delays decode steps: "
        f"{fmt(extra_cpu, 0)} ms against a {fmt(raw_wall, 0)} ms raw answer is {fmt(100 * extra_cpu / raw_wall, 0)}%, "
        f"the order of the gap. Generate coalesces TokenDeltas to keep that small: the first at once, then at "
        f"most one every {DELTA_INTERVAL_S * 1000:g} ms per answer (x generations in flight, up to "
        f"{DELTA_INTERVAL_MAX_S * 1000:g} ms).",
        "",
        f"Retrieval, reported apart (retrieval on, {docs} of this repository's documents ingested, "
        f"{retrieval.answers} questions about them, {retrieval.cited} answered with citations): retrieval "
        f"{fmt(median(retrieval.retrieval_ms))} ms median (`GenerationCompleted.timings.retrieval_ms`: hybrid "
        "and dense search in the embed service, question embedding included; the same questions through "
        f"`POST /v1/search` take {fmt(median(retrieval.search_ms))} ms as a client sees it); generate's handler TTFT "
        f"{fmt(median(retrieval.handler_ttft_ms))} ms and gateway TTFT {fmt(median(retrieval.gateway_ttft_ms))} "
        f"ms with the sources in the prompt ({fmt(median([float(t) for t in retrieval.prompt_tokens]), 0)} prompt "
        f"tokens; without retrieval: {fmt(median(single.handler_ttft_ms))} ms handler TTFT).",
        "",
        "### Concurrent streaming requests",
        "",
        "Each level: that many requests started together, repeated; aggregate = all completion tokens / "
        "(first start -> last end), median over rounds; latency = request -> end of stream, p95 over every "
        "request of the level. Raw: the same number of concurrent streams on the in-process backend "
        "(max_active 8, as generate runs it).",
        "",
        "| concurrent | rounds | gateway tokens/s | raw tokens/s | gateway / raw | gateway p95 latency | "
        "raw p95 latency | gateway TTFT p50 / p95 |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for gw, rw in zip(*levels, strict=True):
        gw_agg, rw_agg = median(gw.aggregate_tokens_per_s), median(rw.aggregate_tokens_per_s)
        lines.append(
            f"| {gw.concurrency} | {len(gw.aggregate_tokens_per_s)} | {fmt(gw_agg)} | {fmt(rw_agg)} | "
            f"{gw_agg / rw_agg:.2f} | {fmt(p95(gw.latencies_ms), 0)} ms | {fmt(p95(rw.latencies_ms), 0)} ms | "
            f"{fmt(median(gw.ttft_ms), 0)} / {fmt(p95(gw.ttft_ms), 0)} ms |"
        )
    lines += ["", *batching_targets(*levels)]
    lines += [
        "",
        "### Three backends, one harness",
        "",
        f"The same question through the Generator port of each backend (`stream(messages, params)`), warm-up then "
        f"{args.runs} runs each, interleaved. onnx: `OnnxGenaiBackend` in this process; openai: "
        "`OpenAICompatibleBackend` against this run's Gyre gateway (which runs onnx in its generate service: the "
        "figure includes HTTP, gateway, NATS and generate); triton: `TritonBackend` over gRPC streaming against "
        "`tritonserver` from deploy/triton (nvidia-pytriton's binary, the gyre_llm Python-backend model running "
        f"the same onnxruntime-genai model on CPU, {THREADS} threads as well).",
        "",
        "| backend | version | TTFT | tokens/s | vs onnx tokens/s | CPU ms / answer (all its processes) | same text |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = next((b for b in backends if b.samples and b.name.startswith("onnx")), None)
    base_rate = median([s.tokens_per_s for s in base.samples]) if base else float("nan")
    for b in backends:
        if not b.samples:
            lines.append(f"| {b.name} | {b.version} | n/a | n/a | n/a | n/a | {b.error or 'no run'} |")
            continue
        rate = median([s.tokens_per_s for s in b.samples])
        same = "yes" if base and all(s.text == base.samples[0].text for s in b.samples) else "no"
        lines.append(
            f"| {b.name} | `{b.version}` | {fmt(median([s.ttft_ms for s in b.samples]))} ms | {fmt(rate)} | "
            f"{rate / base_rate:.2f} | {fmt(b.cpu_ms, 0)} | {same} |"
        )
    by_name = {b.name.split(" ")[0]: b for b in backends if b.samples}
    if {"onnx", "openai", "triton"} <= by_name.keys():
        onnx, openai, triton = by_name["onnx"], by_name["openai"], by_name["triton"]
        lines += [
            "",
            f"CPU per answer, every process each backend involves: onnx {fmt(onnx.cpu_ms, 0)} ms, openai "
            f"{fmt(openai.cpu_ms, 0)} ms, triton {fmt(triton.cpu_ms, 0)} ms. The openai path carries the "
            "gateway's costs (above) plus its own HTTP client; the triton path sends every token as its own "
            "response, from the model's Python stub through shared memory to tritonserver and on as a gRPC "
            "stream message, work that runs on the same 2 cores as the model's threads.",
        ]
    lines += ["", END, ""]
    return "\n".join(lines)


def batching_targets(gateway: list[Level], raw: list[Level]) -> list[str]:
    """Issue 10's batched-generation targets, from the concurrency levels above (medians over rounds)."""

    def by(levels: list[Level], c: int) -> Level | None:
        return next((level for level in levels if level.concurrency == c), None)

    def scale(levels: list[Level]) -> float:
        one, eight = by(levels, 1), by(levels, 8)
        if one is None or eight is None:
            return float("nan")
        return median(eight.aggregate_tokens_per_s) / median(one.aggregate_tokens_per_s)

    def slowdown(levels: list[Level]) -> float:
        one, four = by(levels, 1), by(levels, 4)
        if one is None or four is None:
            return float("nan")
        return median(four.walls_ms) / median(one.walls_ms)

    def judged(value: float, ok: bool) -> str:
        return "n/a" if value != value else f"{value:.2f}x ({'met' if ok else 'missed'})"

    g_scale, r_scale, g_slow, r_slow = scale(gateway), scale(raw), slowdown(gateway), slowdown(raw)
    return [
        "Batched generation (issue 10), from the rounds above: concurrent requests run as batches on "
        "onnxruntime-genai's og.Engine (4 rows a batch on CPU; later arrivals start another batch).",
        "",
        "| measure | gateway | raw `OnnxGenaiBackend` | target |",
        "| --- | --- | --- | --- |",
        f"| 8 concurrent streams' aggregate tokens/s over one stream's | {judged(g_scale, g_scale >= 2.5)} | "
        f"{judged(r_scale, r_scale >= 2.5)} | >= 2.5x |",
        f"| time for 4 concurrent requests (first start -> last end) over the time of one | "
        f"{judged(g_slow, g_slow <= 2)} | {judged(r_slow, r_slow <= 2)} | <= 2x |",
    ]


def replace_section(document: str, section: str) -> str:
    """``document`` with this benchmark's section (its heading to the end marker) replaced in place, else appended.

    The begin marker sits under the heading: other benchmarks cut their own section up to the next
    ``## `` heading, which leaves a marker placed above the heading at their mercy."""
    begin = document.find(BEGIN)
    if begin >= 0:
        end = document.find(END, begin)
        heading = document.rfind(SECTION_HEADING, 0, begin)
        if end >= 0 and heading >= 0:
            after = document[end + len(END) :].lstrip("\n")
            return document[:heading] + section.rstrip() + "\n" + ("\n" + after if after else "")
    return document.rstrip() + "\n\n" + section.rstrip() + "\n"


def load_average() -> float:
    return os.getloadavg()[0]


async def run_async(
    args: argparse.Namespace, stack: LocalStack, model_dir: Path, triton: TritonServer | None, triton_error: str,
    loads: dict[str, float],
) -> tuple[SingleStream, Hops, RetrievalRun, int, tuple[list[Level], list[Level]], list[BackendRun]]:
    bus = await connect(load_settings({}, nats_url=stack.nats_url), name="bench-generation")
    store = GenerationStore(await bus.kv("gyre_generations"))
    raw = OnnxGenaiBackend(model_dir, threads=THREADS, max_active=8)
    try:
        loads["start"] = load_average()
        log("1. single stream: gateway vs raw")
        single = await single_stream(stack, raw, store, args.runs)
        log("1. hops probe")
        hops = await probe_hops(stack, bus, store, args.probe_runs)
        log("1. retrieval apart")
        docs = await ingest_docs(stack, bus)
        retrieval = await with_retrieval(stack, store)
        loads["part 2"] = load_average()
        log("2. concurrency")
        levels = await concurrency(stack, raw, lambda c: max(args.rounds, -(-args.requests_per_level // c)))
        loads["part 3"] = load_average()
        log("3. three backends")
        backends = await three_backends(raw, stack, triton, triton_error, model_dir, args.runs)
        loads["end"] = load_average()
    finally:
        await raw.close()
        await bus.close()
    return single, hops, retrieval, docs, levels, backends


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=11, help="measured runs per side (single stream, backends)")
    parser.add_argument("--probe-runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per concurrency level (at least)")
    parser.add_argument("--requests-per-level", type=int, default=8, help="requests per level (rounds grow to it)")
    parser.add_argument("--no-triton", action="store_true", help="skip starting tritonserver")
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    model_root = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    model_dir = model_root / MODEL
    loads: dict[str, float] = {}

    with tempfile.TemporaryDirectory(prefix="gyre-bench-generation-") as data_dir:
        stack = LocalStack(
            data_dir=Path(data_dir), model_dir=model_root, nats_port=free_port(), nats_monitor_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={"GYRE_API_KEYS": f"{KEY}:{TENANT}", "GYRE_ONNX_THREADS": str(THREADS)},
        )
        log("starting the local stack")
        with stack, _maybe_triton(model_dir, skip=args.no_triton) as (triton, triton_error):
            log(f"stack up in {time.perf_counter() - started:.1f} s")
            results = asyncio.run(run_async(args, stack, model_dir, triton, triton_error, loads))
    duration = time.perf_counter() - started
    text = report(args, *results, duration_s=duration, loads=loads)
    print(text)
    if args.write:
        existing = args.write.read_text() if args.write.exists() else "# Benchmarks\n"
        args.write.write_text(replace_section(existing, text))
        log(f"written to {args.write}")


@contextmanager
def _maybe_triton(model_dir: Path, *, skip: bool) -> Iterator[tuple[TritonServer | None, str]]:
    if skip:
        yield None, "skipped (--no-triton)"
        return
    try:
        server = triton_server(model_dir)
        running = server.__enter__()
    except Exception as exc:  # reported in the table; the other figures still count
        log(f"tritonserver unavailable: {exc}")
        yield None, f"tritonserver unavailable: {str(exc)[:200]}"
        return
    try:
        yield running, ""
    finally:
        server.__exit__(None, None, None)


if __name__ == "__main__":
    main()
