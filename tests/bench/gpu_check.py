"""The Python half of scripts/gpu-check.sh: embedding and generation on CUDA, written to docs/benchmarks-gpu.md.

`python -m tests.bench.gpu_check bench --provider cuda|cpu ...` runs both benchmarks and writes the
report; `smoke FOLDER` is the built generator's smoke test (tests/bench/gpu_build.py calls it in this
venv, since the build venv's onnxruntime-genai has no CUDA); `report` writes the report with the
steps alone (the shell's fallback when the benchmarks did not get to write it).

Only the standard library is imported at module level: the fallback runs with plain python3, and a
missing onnxruntime is a failed row of the report, not a crash. The sessions and generators are our
own (not gyre_runtime's), so the figures are the runtime's, with providers chosen here; the CPU
provider runs the same code, which is how this module is tested on machines without a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BATCH = 32
MAX_TOKENS = 256  # what the embedder takes (its manifest's max_tokens)
SIZES = {  # chunks (and their length in characters), timed rounds; new tokens, runs, streams
    "full": {"chunks": 512, "chars": 1200, "rounds": 3, "new_tokens": 128, "runs": 3, "streams": 8},
    "small": {"chunks": 32, "chars": 300, "rounds": 1, "new_tokens": 8, "runs": 1, "streams": 2},
}
SMOKE_PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
HEADER = """# GPU benchmarks

<!-- Written by scripts/gpu-check.sh (tests/bench/gpu_check.py): rerun it to replace this file. -->

How this file is produced: `just gpu-check` (or `bash scripts/gpu-check.sh`) on a machine with an
NVIDIA GPU (a driver that supports CUDA 13), the repository and the package registries. In at
most about 8 minutes it (1) creates `.venv-gpu` with onnxruntime-gpu and onnxruntime-genai-cuda
(pinned in `scripts/gpu-check-requirements.txt`; CUDA and cuDNN come as pip packages), (2) builds
the default models if missing (`libs/gyre-modelbuild/build.sh`) and the CUDA variant of the generator
(the same recipe as `smollm2-135m-instruct`, builder option `-e cuda`, into `data/gpu-check/models`),
(3) runs the embedding benchmark (all-MiniLM-L6-v2, CUDA against CPU, batch 32) and the generation
benchmark (onnxruntime-genai on CUDA: one stream, then several streams as one batch) and (4) writes
this file. A step that fails is a row below, with its error. Without `nvidia-smi` the script refuses
(exit 2); `GYRE_GPU_CHECK_PROVIDER=cpu` runs it all on the CPU provider (into
`data/gpu-check/benchmarks-cpu.md`), which is how it is tested.
"""


@dataclass
class Report:
    """What the run found; each section holds rows or the error that stopped it."""

    run: dict[str, str] = field(default_factory=dict)
    steps: list[dict[str, Any]] = field(default_factory=list)
    sections: dict[str, list[str]] = field(default_factory=dict)


def _dist(*names: str) -> str:
    """`name version` of the first installed distribution (onnxruntime-gpu or onnxruntime, ...)."""
    for name in names:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            continue
    return "not installed"


def load_runtime(provider: str) -> Any:
    """onnxruntime, with CUDA's and cuDNN's libraries from the venv's nvidia packages preloaded."""
    import onnxruntime as ort

    if provider == "cuda" and hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()  # LD_LIBRARY_PATH from the shell covers the layouts this misses
        except Exception as exc:  # a missing library shows as a failed session below
            print(f"[gpu-check] onnxruntime.preload_dlls: {exc}", flush=True)
    return ort


# -- embedding ---------------------------------------------------------------------------------


def doc_chunks(n: int, chars: int = 1200, docs: Path = ROOT / "docs") -> list[str]:
    """n chunks of chars/2 to chars characters (1200: about 130-260 tokens) from the repository's docs."""
    chunks: list[str] = []
    for path in sorted(docs.glob("*.md")):
        current = ""
        for para in path.read_text(encoding="utf-8").split("\n\n"):
            current = f"{current}\n\n{para}".strip()[:chars]
            if len(current) >= chars // 2:
                chunks.append(current)
                current = ""
    if not chunks:
        chunks = [
            f"Chunk {i}: the platform stores documents, embeds them and answers questions. " * 8 for i in range(8)
        ]
    return [chunks[i % len(chunks)] for i in range(n)]


def _batches(tokenizer: Any, texts: list[str]) -> list[dict[str, Any]]:
    """Feeds of BATCH texts each, padded to the batch's longest (as the embed service does)."""
    import numpy as np

    out = []
    for start in range(0, len(texts), BATCH):
        enc = tokenizer.encode_batch(texts[start : start + BATCH])
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, e in enumerate(enc):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return out


def embed_rate(model: Path, provider: str, batches: list[dict[str, Any]], rounds: int) -> dict[str, Any]:
    """chunks/s of one model file under one provider; fails if CUDA was asked for and did not load."""
    ort = load_runtime(provider)
    wanted = ["CUDAExecutionProvider", "CPUExecutionProvider"] if provider == "cuda" else ["CPUExecutionProvider"]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(model), sess_options=opts, providers=wanted)
    used = session.get_providers()
    if used[0] != wanted[0]:
        raise RuntimeError(f"{wanted[0]} did not load (session runs on {used}); see the log for the library it missed")
    names = {i.name for i in session.get_inputs()}
    feeds = [{k: v for k, v in b.items() if k in names} for b in batches]
    output = [o.name for o in session.get_outputs()][:1]
    for f in feeds[:2]:  # warm-up: CUDA allocates and picks kernels on the first runs
        session.run(output, f)
    t0 = time.perf_counter()
    for f in feeds * rounds:
        session.run(output, f)
    seconds = time.perf_counter() - t0
    n = sum(len(f["input_ids"]) for f in feeds) * rounds
    return {"chunks_per_s": n / seconds, "ms_per_batch": 1000 * seconds / (len(feeds) * rounds), "providers": used}


def embedding_section(embedder: Path, provider: str, size: dict[str, int]) -> list[str]:
    """Rows for the int8 model (deployed) and the fp32 one (what a GPU would rather run), CUDA and CPU."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(embedder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.no_padding()
    texts = doc_chunks(size["chunks"], size["chars"])
    batches = _batches(tokenizer, texts)
    tokens = sum(int(b["attention_mask"].sum()) for b in batches) / len(texts)
    rows = [
        f"{len(texts)} chunks of {tokens:.0f} tokens on average, batch {BATCH}, {size['rounds']} round(s) timed "
        f"({'1 on the CPU for comparison' if provider == 'cuda' else 'on the CPU'}) after 2 warm-up batches; "
        "model calls only (tokenisation is the same on both providers and not counted).",
        "",
        "| model file | provider | chunks/s | ms per batch | against CPU | session providers |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    providers = ["cuda", "cpu"] if provider == "cuda" else ["cpu"]
    for file in ("model.onnx", "model_fp32.onnx"):
        if not (embedder / file).exists():
            continue
        cpu_rate = None
        for p in reversed(providers):  # CPU first: the CUDA row is compared with it
            try:
                r = embed_rate(embedder / file, p, batches, size["rounds"] if p == provider else 1)
            except Exception as exc:
                rows.append(f"| {file} | {p} | failed | | | {_one_line(exc)} |")
                continue
            cpu_rate = r["chunks_per_s"] if p == "cpu" else cpu_rate
            ratio = f"{r['chunks_per_s'] / cpu_rate:.2f}x" if cpu_rate else "n/a"
            used = ", ".join(r["providers"])
            rows.append(f"| {file} | {p} | {r['chunks_per_s']:.1f} | {r['ms_per_batch']:.1f} | {ratio} | {used} |")
    return rows


# -- generation --------------------------------------------------------------------------------


def load_generator(folder: Path, provider: str) -> tuple[Any, Any, Any]:
    """(og module, model, tokenizer) on the chosen provider, whatever genai_config.json names."""
    load_runtime(provider)
    import onnxruntime_genai as og

    if provider == "cuda" and not og.is_cuda_available():
        raise RuntimeError(
            "onnxruntime-genai reports no CUDA (is onnxruntime-genai-cuda installed, the driver new enough?)"
        )
    config = og.Config(str(folder))
    config.clear_providers()
    if provider == "cuda":
        config.append_provider("cuda")
    model = og.Model(config)
    return og, model, og.Tokenizer(model)


def _generate(og: Any, model: Any, ids: list[int], streams: int, new_tokens: int) -> tuple[float, float]:
    """(seconds to the first token, seconds in all) for `streams` copies of the prompt as one batch,
    exactly `new_tokens` each (min_length holds the end-of-text token back)."""
    import numpy as np

    total = len(ids) + new_tokens
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=total, min_length=total, do_sample=False, batch_size=streams)
    generator = og.Generator(model, params)
    t0 = time.perf_counter()
    generator.append_tokens(np.tile(np.asarray(ids, dtype=np.int32), (streams, 1)))
    generator.generate_next_token()
    generator.get_next_tokens()
    first = time.perf_counter() - t0
    while not generator.is_done():
        generator.generate_next_token()
        generator.get_next_tokens()
    return first, time.perf_counter() - t0


def generation_prompt(tokenizer: Any, chars: int) -> list[int]:
    """A retrieval-style prompt: one doc chunk as context and a question."""
    context = doc_chunks(1, chars)[0]
    text = (
        "<|im_start|>system\nAnswer from the context.<|im_end|>\n"
        f"<|im_start|>user\nContext:\n{context}\n\nQuestion: what does this text describe?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    return list(tokenizer.encode(text))


def generation_section(generator: Path, provider: str, size: dict[str, int]) -> list[str]:
    """Single-stream tokens/s and TTFT, then `streams` streams batched: aggregate tokens/s."""
    og, model, tokenizer = load_generator(generator, provider)
    ids = generation_prompt(tokenizer, size["chars"])
    n, streams = size["new_tokens"], size["streams"]
    _generate(og, model, ids, 1, 4)  # warm-up
    single = [_generate(og, model, ids, 1, n) for _ in range(size["runs"])]
    ttft = statistics.median(s[0] for s in single)
    total = statistics.median(s[1] for s in single)
    rows = [
        f"`{generator.name}` on {provider}; prompt {len(ids)} tokens, {n} new tokens per stream (greedy), "
        f"median of {size['runs']} run(s) after a warm-up.",
        "",
        "| measure | value |",
        "| --- | ---: |",
        f"| single stream: time to first token (ms) | {1000 * ttft:.1f} |",
        f"| single stream: decode tokens/s | {(n - 1) / max(total - ttft, 1e-9):.1f} |",
        f"| single stream: tokens/s, prompt included | {n / total:.1f} |",
    ]
    try:
        batched = [_generate(og, model, ids, streams, n) for _ in range(size["runs"])]
    except Exception as exc:  # the runtime may not batch this model on this provider
        return [*rows, f"| {streams} streams as one batch | failed: {_one_line(exc)} |"]
    b_first = statistics.median(b[0] for b in batched)
    b_total = statistics.median(b[1] for b in batched)
    b_decode = streams * (n - 1) / max(b_total - b_first, 1e-9)
    return [
        *rows,
        f"| {streams} streams as one batch: time to first token (ms) | {1000 * b_first:.1f} |",
        f"| {streams} streams as one batch: aggregate decode tokens/s | {b_decode:.1f} |",
        f"| {streams} streams as one batch: aggregate tokens/s, prompt included | {streams * n / b_total:.1f} |",
        f"| aggregate / single stream | {(streams * n / b_total) / (n / total):.2f}x |",
    ]


def smoke(folder: Path, provider: str) -> dict[str, Any]:
    """The build's smoke test on `provider`: greedy answer to a known question must name Paris."""
    og, model, tokenizer = load_generator(folder, provider)
    ids = tokenizer.encode(SMOKE_PROMPT)
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 64, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens(ids)
    out: list[int] = []
    t0 = time.perf_counter()
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    rate = len(out) / (time.perf_counter() - t0)
    text = tokenizer.decode(out)
    if "Paris" not in text:
        raise RuntimeError(f"the built model does not answer sensibly on {provider}: {text!r}")
    return {"smoke_tokens_per_s": round(rate, 1), "smoke_provider": provider, "smoke_answer": text.strip()}


# -- the report --------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def run_info(provider: str, gpu_info: Path | None) -> dict[str, str]:
    gpu = gpu_info.read_text().strip() if gpu_info and gpu_info.exists() else ""
    return {
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "provider asked for": provider,
        "GPU (nvidia-smi)": gpu or "none (CPU run)",
        "CPU cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "onnxruntime": _dist("onnxruntime-gpu", "onnxruntime"),
        "onnxruntime-genai": _dist("onnxruntime-genai-cuda", "onnxruntime-genai"),
        "tokenizers / numpy": f"{_dist('tokenizers')} / {_dist('numpy')}",
    }


def read_steps(path: Path | None) -> list[dict[str, Any]]:
    """The shell's step records (one JSON object a line); unreadable lines are kept as text."""
    if path is None or not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line))
        except ValueError:
            steps.append({"step": "?", "ok": False, "seconds": 0, "note": line})
    return steps


def render(report: Report) -> str:
    lines = [HEADER, "## Run", "", "| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in report.run.items()]
    lines += ["", "## Steps", "", "| step | result | seconds | note |", "| --- | --- | ---: | --- |"]
    for s in report.steps:
        note = str(s.get("note", "")).replace("|", "/").replace("\n", " ")
        lines.append(f"| {s.get('step')} | {'ok' if s.get('ok') else 'FAILED'} | {s.get('seconds', 0)} | {note} |")
    for title, rows in report.sections.items():
        lines += ["", f"## {title}", "", *rows]
    return "\n".join(lines) + "\n"


def has_failures(report: Report) -> bool:
    """Whether a benchmark or one of its rows failed (the run's exit status says so too)."""
    return any("failed" in row.lower() for rows in report.sections.values() for row in rows)


def _section(report: Report, title: str, fn: Callable[[], list[str]]) -> None:
    """Runs one benchmark; its failure becomes the section's text and the others still run."""
    print(f"[gpu-check] {title} ...", flush=True)
    try:
        report.sections[title] = fn()
    except Exception as exc:
        report.sections[title] = [f"**Failed:** {_one_line(exc)}"]
    print("\n".join(report.sections[title]), flush=True)


def bench(args: argparse.Namespace) -> Report:
    size = SIZES[args.size]
    report = Report(run_info(args.provider, args.gpu_info), read_steps(args.steps))
    report.run["size"] = f"{args.size} {size}"
    _section(report, "Embedding", lambda: embedding_section(args.embedder, args.provider, size))
    _section(report, "Generation", lambda: generation_section(args.generator, args.provider, size))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.gpu_check", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name in ("bench", "report"):
        p = sub.add_parser(name)
        p.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--steps", type=Path, help="the shell's step records (JSON lines)")
        p.add_argument("--gpu-info", type=Path, help="nvidia-smi's line for the GPU")
        p.add_argument("--size", choices=tuple(SIZES), default="full")
        p.add_argument("--embedder", type=Path, default=ROOT / "data/models/all-minilm-l6-v2")
        p.add_argument("--generator", type=Path, default=ROOT / "data/gpu-check/models/smollm2-135m-instruct-cuda")
        p.add_argument("--why", default="the benchmarks did not run", help="report: what the sections say")
    p = sub.add_parser("smoke")
    p.add_argument("folder", type=Path)
    p.add_argument("--provider", choices=("cuda", "cpu"), default="cuda")
    args = ap.parse_args(argv)

    if args.command == "smoke":
        print(json.dumps(smoke(args.folder, args.provider)), flush=True)
        return 0
    if args.command == "bench":
        report = bench(args)
    else:
        report = Report(run_info(args.provider, args.gpu_info), read_steps(args.steps))
        report.sections = {
            "Embedding": [f"**Not measured:** {args.why}."],
            "Generation": [f"**Not measured:** {args.why}."],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(report))
    print(f"[gpu-check] wrote {args.out}", flush=True)
    if args.command == "bench" and has_failures(report):
        print("[gpu-check] a benchmark failed: see the report", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
