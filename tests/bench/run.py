"""Benchmarks of issue 2: embedding pipeline vs raw ONNX Runtime, chat through the gateway vs raw
onnxruntime-genai. Ratios against baselines measured in the same run; results to docs/benchmarks.md.

Run: `just bench` (or `.venv/bin/python -m tests.bench.run --write docs/benchmarks.md`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import nats

from gyre_cli.stack import SERVICES, LocalStack
from gyre_contracts import Chunk, ChunksReady, SamplingParams
from gyre_generate.prompting import SYSTEM_WITHOUT_SOURCES
from gyre_runtime.bus.connection import connect
from gyre_runtime.config import load_settings
from gyre_runtime.generation.onnx import OnnxGenaiBackend
from gyre_runtime.models.embedder import OnnxEmbedder
from tests.bench.sections import heading, write_section
from tests.support.nats_server import free_port
from tests.support.publishing import publish_many

REPO = Path(__file__).resolve().parents[2]
KEY = "bench-key"
THREADS = 2
QUESTION = "Explain in a few sentences why the sky is blue."
MAX_TOKENS = 96


def corpus_chunks(limit: int) -> list[str]:
    """Real text: paragraphs of this repository's docs and Python sources, ~40-120 words each."""
    pieces: list[str] = []
    paths = sorted(REPO.glob("**/*.md")) + sorted(REPO.glob("libs/**/*.py")) + sorted(REPO.glob("services/**/*.py"))
    for path in paths:
        if ".venv" in path.parts or "data" in path.parts:
            continue
        words = path.read_text(errors="replace").split()
        for start in range(0, len(words), 80):
            window = words[start : start + 80]
            if len(window) >= 40:
                pieces.append(" ".join(window))
    while len(pieces) < limit:
        pieces = pieces + pieces
    return pieces[:limit]


async def pipeline_chunks_per_s(stack: LocalStack, texts: list[str], per_doc: int) -> float:
    """Publish ChunksReady events, time until every DocumentIndexed has arrived."""
    settings = load_settings({}, nats_url=stack.nats_url)
    bus = await connect(settings, name="bench")
    docs = [texts[i : i + per_doc] for i in range(0, len(texts), per_doc)]
    remaining = {f"bench-{i}" for i in range(len(docs))}
    done = asyncio.Event()

    async def on_indexed(msg: nats.aio.msg.Msg) -> None:
        remaining.discard((msg.headers or {}).get("ce-subject", ""))
        if not remaining:
            done.set()

    sub = await bus.nc.subscribe(bus.subject("index.updated"), cb=on_indexed)
    now = dt.datetime.now(dt.UTC)
    events = [
        (
            ChunksReady(
                tenant="bench", document_id=f"bench-{i}", version=1, submitted_at=now,
                chunks=tuple(Chunk(index=j, text=t, start=0, end=len(t), token_count=0) for j, t in enumerate(doc)),
            ),
            None,
        )
        for i, doc in enumerate(docs)
    ]
    started = time.perf_counter()
    await publish_many(bus, events, source="gyre/bench")
    await asyncio.wait_for(done.wait(), 1800)
    elapsed = time.perf_counter() - started
    await sub.unsubscribe()
    await bus.close()
    return len(texts) / elapsed


def raw_embedding_chunks_per_s(model_dir: Path, texts: list[str], batch: int) -> float:
    embedder = OnnxEmbedder(model_dir / "all-minilm-l6-v2", threads=THREADS)
    embedder.embed(texts[:batch])  # warm-up
    started = time.perf_counter()
    for i in range(0, len(texts), batch):
        embedder.embed(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - started)


def gateway_chat(stack: LocalStack, runs: int) -> dict[str, float]:
    """Streamed chat through the gateway (retrieval off, so the prompt equals the raw one)."""
    ttft, rates = [], []
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as client:
        for run in range(runs + 1):
            body = {"messages": [{"role": "user", "content": QUESTION}], "stream": True, "max_tokens": MAX_TOKENS,
                    "retrieval": False, "temperature": 0}
            started = time.perf_counter()
            first = last = None
            tokens = 0
            with client.stream("POST", "/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[6:])
                    if chunk.get("usage"):
                        tokens = chunk["usage"]["completion_tokens"]
                    if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        last = time.perf_counter()
                        first = first or last
            if run == 0 or first is None or last is None:
                continue  # warm-up
            ttft.append((first - started) * 1000)
            rates.append((tokens - 1) / (last - first) if last > first else 0.0)
    return {"ttft_ms": statistics.median(ttft), "tokens_per_s": statistics.median(rates)}


async def raw_chat(model_dir: Path, runs: int) -> dict[str, float]:
    generator = OnnxGenaiBackend(model_dir / "smollm2-135m-instruct", threads=THREADS)
    messages = [("system", SYSTEM_WITHOUT_SOURCES), ("user", QUESTION)]
    ttft, rates = [], []
    for run in range(runs + 1):
        started = time.perf_counter()
        first = last = None
        stream = generator.stream(messages, SamplingParams(max_tokens=MAX_TOKENS, temperature=0.0))
        async for _ in stream:
            last = time.perf_counter()
            first = first or last
        if run == 0 or first is None or last is None:
            continue
        ttft.append((first - started) * 1000)
        rates.append((stream.completion_tokens - 1) / (last - first) if last > first else 0.0)
    await generator.close()
    return {"ttft_ms": statistics.median(ttft), "tokens_per_s": statistics.median(rates)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=1024)
    parser.add_argument("--per-doc", type=int, default=16)
    parser.add_argument("--chat-runs", type=int, default=5)
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    model_dir = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    texts = corpus_chunks(args.chunks)
    settings = load_settings()

    with tempfile.TemporaryDirectory(prefix="gyre-bench-") as data_dir:
        stack = LocalStack(
            data_dir=Path(data_dir), model_dir=model_dir, nats_port=free_port(), nats_monitor_port=free_port(),
            ports={name: free_port() for name in SERVICES},
            extra_env={"GYRE_API_KEYS": f"{KEY}:bench", "GYRE_ONNX_THREADS": str(THREADS),
                       "GYRE_EMBED_BATCH_SIZE": str(settings.embed_batch_size)},
        )
        with stack:
            pipeline = asyncio.run(pipeline_chunks_per_s(stack, texts, args.per_doc))
            chat = gateway_chat(stack, args.chat_runs)
    raw_embed = raw_embedding_chunks_per_s(model_dir, texts, settings.embed_batch_size)
    raw = asyncio.run(raw_chat(model_dir, args.chat_runs))

    rows = {
        "embedding pipeline (ChunksReady -> DocumentIndexed)": f"{pipeline:.1f} chunks/s",
        "raw ONNX Runtime embedding, same chunks": f"{raw_embed:.1f} chunks/s",
        "pipeline / raw": f"{pipeline / raw_embed:.2f}",
        "chat via gateway: time to first token (median)": f"{chat['ttft_ms']:.1f} ms",
        "raw onnxruntime-genai: time to first token": f"{raw['ttft_ms']:.1f} ms",
        "added time to first token": f"{chat['ttft_ms'] - raw['ttft_ms']:.1f} ms",
        "chat via gateway: tokens/s (median)": f"{chat['tokens_per_s']:.1f}",
        "raw onnxruntime-genai: tokens/s": f"{raw['tokens_per_s']:.1f}",
        "gateway / raw tokens/s": f"{chat['tokens_per_s'] / raw['tokens_per_s']:.2f}",
    }
    section = [
        heading("## Issue 2: first benchmarks"),
        "",
        f"Machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}; "
        f"ONNX threads {THREADS}. Command: `just bench` "
        f"(`python -m tests.bench.run --chunks {args.chunks} --per-doc {args.per_doc} --chat-runs {args.chat_runs}`).",
        f"Embedding: {len(texts)} chunks of 40-80 words from this repository's docs and sources, "
        f"{args.per_doc} per ChunksReady event, batch {settings.embed_batch_size}, int8 all-MiniLM-L6-v2; the pipeline "
        "figure includes NATS, Qdrant Edge upserts and the document registry.",
        f"Chat: SmolLM2-135M-Instruct int4, greedy, max_tokens {MAX_TOKENS}, retrieval off so both sides run the "
        f"same prompt; medians of {args.chat_runs} runs after one warm-up; gateway figures measured by an HTTP "
        "client on loopback reading the SSE stream.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *[f"| {k} | {v} |" for k, v in rows.items()],
        "",
    ]
    text = "\n".join(section)
    print(text)
    if args.write:
        write_section(args.write, text, "## Issue 2: first benchmarks")


if __name__ == "__main__":
    main()
