"""`gyre models compare`: run each candidate model through the evaluate service and write the selection report.

  gyre models compare --set GOLDEN.jsonl --documents DIR CANDIDATE [CANDIDATE ...]
      [--out docs/model-selection.md] [--env KEY=VALUE ...]

CANDIDATE is a model folder in the model store (`smollm2-135m-instruct-int8`, `bge-small-en-v1.5`)
or an OpenAI-compatible endpoint, `openai:MODEL@BASE_URL`. Each one runs on a private local stack
(nats-server and every service, on free ports, in a temporary folder) with the default model of
the other role: the pages under DIR are ingested (document id = path under DIR, as the golden set's
labels name them), the golden set is evaluated, the figures are kept. A candidate that fails (not
built, endpoint unreachable, evaluation failed) is a failed row; the others still run.

Writes the Markdown report to --out and a PNG beside it (quality against latency, point size =
peak memory), and prints the choice for each role with the reason.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

from gyre_cli.compare.candidates import Candidate, CandidateError, parse_candidate
from gyre_cli.compare.drive import CONTENT_TYPES, log
from gyre_cli.compare.report import chart, choose, render
from gyre_cli.compare.runner import Row, run_candidate
from gyre_runtime.config import load_settings
from gyre_runtime.logging import configure_logging
from gyre_runtime.state.golden_sets import GoldenSetError, parse_golden_jsonl


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("candidates", nargs="+", metavar="CANDIDATE", help="model folder name or openai:MODEL@URL")
    parser.add_argument("--set", required=True, type=Path, dest="golden", help="golden set (JSONL)")
    parser.add_argument("--documents", required=True, type=Path, help="folder of the pages the set is about")
    parser.add_argument("--out", type=Path, default=Path("docs/model-selection.md"), help="report (Markdown)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting for every candidate's stack (e.g. GYRE_ONNX_THREADS=2)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per candidate's ingestion and run")
    parser.add_argument("--reproduce", help="the command the report names to reproduce it (default: this one)")


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("GYRE_"):
            raise CandidateError(f"--env {pair!r}: expected GYRE_SETTING=value")
        env[key] = value
    return env


def run(args: argparse.Namespace) -> int:
    configure_logging("gyre-cli", "warning")  # its own progress lines only, not each stack's topology log
    # SIGTERM unwinds like Ctrl-C, so the candidate's private stack is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    model_root = load_settings().model_path.resolve()
    try:
        candidates: list[Candidate] = [parse_candidate(spec, model_root) for spec in args.candidates]
        extra_env = _env(args.env)
        items = parse_golden_jsonl(args.golden.read_bytes())
    except (CandidateError, GoldenSetError) as exc:
        print(f"gyre models compare: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"gyre models compare: cannot read the golden set {args.golden}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    root: Path = args.documents
    documents = sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in CONTENT_TYPES
    )
    if not documents:
        print(f"gyre models compare: no pages ({', '.join(CONTENT_TYPES)}) under {root}", file=sys.stderr)
        return 2
    rows: list[Row] = []
    for candidate in candidates:
        log(f"{candidate.label} ({candidate.role}): {len(items)} items, {len(documents)} pages")
        row = run_candidate(candidate, items=items, documents_root=root, documents=documents,
                            model_root=model_root, extra_env=extra_env, timeout_s=args.timeout)
        rows.append(row)
        log(f"{candidate.label}: {'done' if row.ok else 'FAILED: ' + str(row.error)} in {row.seconds:.0f}s")
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    png = out.with_suffix(".png")
    drawn = chart(rows, png)
    command = args.reproduce or (
        "gyre models compare " + " ".join(shlex.quote(a) for a in sys.argv[3:]) if len(sys.argv) > 3 else ""
    )
    out.write_text(render(rows, set_label=f"{args.golden} ({len(items)} items, {len(documents)} pages)",
                          chart_name=png.name if drawn else None, command=command or "gyre models compare ..."))
    print(f"report: {out}" + (f" and {png}" if drawn else ""))
    for role in ("generator", "embedder"):
        if any(r.candidate.role == role for r in rows):
            chosen, why = choose(rows, role)
            print(f"{role}: {chosen.candidate.label if chosen else 'none'} ({why})")
    return 0 if any(r.ok for r in rows) else 1
