"""`gyre eval`: golden sets, evaluation runs, their metrics, comparisons, reports and charts, through the gateway.

  gyre eval sets put NAME FILE.jsonl                 store FILE as the next version of set NAME
  gyre eval sets list
  gyre eval sets show NAME [--version N]             counts and the first items
  gyre eval sets export NAME [--version N] [-o FILE]
  gyre eval run SET [--prompt-label L] [--model M] [--mode hybrid|dense|sparse] [--top-k K]
                [--max-tokens N] [--temperature T] [--baseline ID] [--floor metric=value ...] [--wait]
  gyre eval show ID [--items] [--report FILE] [--chart FILE]
  gyre eval compare BASELINE CANDIDATE
  gyre eval synth --tenant T --n N [--seed S] [-o FILE | --put NAME]

Every command but synth talks to the gateway (--url, default $GYRE_GATEWAY_URL or http://127.0.0.1:8080)
with an admin key (--key, default $GYRE_API_KEY, else the local stack's <data dir>/api-key). synth reads
the tenant's indexed chunks from NATS (GYRE_NATS_URL) and writes synthetic items as JSONL.

`compare` prints the service's paired comparison (confidence intervals, p-values) when CANDIDATE was run
with `--baseline BASELINE`; for any other two completed runs, the plain differences of their metrics.

Exit status: 0 done (with --wait: the run completed and passed its gate, or had none); 1 the run failed,
its gate failed, or the runs cannot be compared; 2 the gateway refused the request or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from gyre_cli.client import GatewayError
from gyre_cli.eval_client import DEFAULT_GATEWAY_URL, EvalClient, client_from
from gyre_cli.eval_format import (
    comparison_table,
    differences_table,
    items_table,
    progress_line,
    put_receipt,
    run_summary,
    set_summary,
    sets_table,
)
from gyre_cli.eval_sources import read_feedback, read_source_chunks
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.golden_sets import GoldenItem, dump_golden_jsonl, items_from_feedback
from gyre_runtime.state.golden_synth import synthesize

FINISHED = ("completed", "failed")

# Exit statuses (see the module docstring).
OK, RUN_FAILED, REFUSED = 0, 1, 2
INTERRUPTED = 130  # Ctrl-C while following a run, as shells report SIGINT


# ---------------------------------------------------------------- the commands


def write_output(data: bytes, path: str | None, out: TextIO) -> None:
    if path and path != "-":
        Path(path).write_bytes(data)
    else:
        out.write(data.decode("utf-8"))
        out.flush()


def store_or_write(data: bytes, args: argparse.Namespace, client: EvalClient, out: TextIO) -> None:
    """Golden items made here: stored as set ``--put`` through the gateway, else written to ``-o`` or ``out``."""
    if args.put:
        print(put_receipt(client.put_set(args.put, data)), file=out)
    else:
        write_output(data, args.output, out)


def cmd_sets(args: argparse.Namespace, client: EvalClient, out: TextIO) -> int:
    if args.sets_action == "put":
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
        print(put_receipt(client.put_set(args.name, data)), file=out)
    elif args.sets_action == "list":
        print(sets_table(client.sets()), file=out)
    elif args.sets_action == "show":
        print(set_summary(client.golden_set(args.name, args.version)), file=out)
    else:
        write_output(client.export_set(args.name, args.version), args.output, out)
    return OK


def parse_floor(text: str) -> tuple[str, float]:
    """``metric=value`` of ``--floor``."""
    name, sep, value = text.partition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not sep or not name.strip() or not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected metric=value (such as must_include=0.8), not {text!r}")
    return name.strip(), number


def run_body(args: argparse.Namespace) -> dict[str, Any]:
    """The POST body: only what the options set, so the rest is what a user's request gets."""
    body: dict[str, Any] = {"set": args.set}
    if args.set_version:
        body["set_version"] = args.set_version
    for option in ("prompt_label", "model", "baseline"):
        if getattr(args, option):
            body[option] = getattr(args, option)
    if args.mode is not None or args.top_k is not None:
        body["retrieval"] = {"mode": args.mode or "hybrid"} | ({"top_k": args.top_k} if args.top_k is not None else {})
    sampling = {name: getattr(args, name) for name in ("max_tokens", "temperature", "seed")
                if getattr(args, name) is not None}
    if sampling:
        body["sampling"] = sampling
    if args.floor:
        body["floors"] = dict(args.floor)
    return body


def verdict_status(run: dict[str, Any]) -> int:
    return OK if run["status"] == "completed" and run.get("passed") is not False else RUN_FAILED


def wait_for(
    client: EvalClient, evaluation_id: str, *, poll_s: float, progress: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the run until it ends (the gateway has no push for it); a line on ``progress`` when it moves."""
    shown = ""
    while True:
        run = client.evaluation(evaluation_id)
        line = progress_line(run)
        if line != shown:
            print(line, file=progress, flush=True)
            shown = line
        if run["status"] in FINISHED:
            return run
        sleep(poll_s)


def cmd_run(args: argparse.Namespace, client: EvalClient, out: TextIO) -> int:
    receipt = client.start(run_body(args))
    print(receipt["id"], file=out, flush=True)
    if not args.wait:
        return OK
    try:
        run = wait_for(client, receipt["id"], poll_s=args.poll_s, progress=sys.stderr)
    except KeyboardInterrupt:
        print(f"\nstopped following; the run goes on: `gyre eval show {receipt['id']}`", file=sys.stderr)
        return INTERRUPTED
    print(run_summary(run), file=out)
    return verdict_status(run)


def cmd_show(args: argparse.Namespace, client: EvalClient, out: TextIO) -> int:
    run = client.evaluation(args.id, items=args.items)
    print(run_summary(run), file=out)
    if args.items:
        print("", file=out)
        print(items_table(run.get("items") or []), file=out)
    for path, fetch, what in ((args.report, client.report, "report"), (args.chart, client.chart, "chart")):
        if path:
            Path(path).write_bytes(fetch(args.id))
            print(f"{what} saved to {path}", file=out)
    return OK


def cmd_compare(args: argparse.Namespace, client: EvalClient, out: TextIO) -> int:
    baseline, candidate = client.evaluation(args.baseline), client.evaluation(args.candidate)
    if candidate.get("baseline") == args.baseline and candidate.get("comparison"):
        print(f"{args.candidate} against its baseline {args.baseline} (paired by item, computed by the service):",
              file=out)
        print(comparison_table(candidate["comparison"]), file=out)
        return OK
    unfinished = [run for run in (baseline, candidate) if run["status"] != "completed"]
    if unfinished:
        for run in unfinished:
            print(f"error: {run['id']} is {run['status']}: only completed runs can be compared", file=sys.stderr)
        return RUN_FAILED
    print(f"{args.candidate} - {args.baseline} (plain differences; for paired confidence intervals run the "
          f"candidate with --baseline {args.baseline})", file=out)
    if baseline["set"] != candidate["set"]:
        print(f"note: the runs evaluated different sets ({baseline['set']}, {candidate['set']})", file=out)
    print(differences_table(baseline["metrics"], candidate["metrics"]), file=out)
    return OK


# ---------------------------------------------------------------- synth


Synthesize = Callable[..., list[GoldenItem]]


def cmd_synth(
    args: argparse.Namespace, client: EvalClient, out: TextIO, *, synthesizer: Synthesize | None = None,
    settings: Settings | None = None,
) -> int:
    synthesizer = synthesizer or synthesize
    chunks = asyncio.run(read_source_chunks(settings or load_settings(), args.tenant))
    if not chunks:
        print(f"error: tenant {args.tenant!r} has no indexed documents to write questions about", file=sys.stderr)
        return RUN_FAILED
    items = synthesizer(chunks, args.n, seed=args.seed, unanswerable_share=args.unanswerable_share)
    documents = len({c.document_id for c in chunks})
    print(f"{len(items)} items from {len(chunks)} chunks of {documents} documents of tenant {args.tenant!r}",
          file=sys.stderr)
    store_or_write(dump_golden_jsonl(items), args, client, out)
    return OK


# ---------------------------------------------------------------- from feedback


def cmd_from_feedback(args: argparse.Namespace, client: EvalClient, out: TextIO, *,
                      settings: Settings | None = None) -> int:
    """Rated answers as golden items: a thumbs-up's answer as the reference, a thumbs-down's correction."""
    records = asyncio.run(read_feedback(settings or load_settings(), args.tenant))
    items = items_from_feedback(records)
    print(f"{len(items)} items from {len(records)} ratings of tenant {args.tenant!r} "
          "(thumbs-down without a correction are left out)", file=sys.stderr)
    if not items:
        return RUN_FAILED
    store_or_write(dump_golden_jsonl(items), args, client, out)
    return OK


# ---------------------------------------------------------------- parser and entry point


def cmd_eval(args: argparse.Namespace, *, client: EvalClient | None = None, out: TextIO | None = None) -> int:
    """``gyre eval``: see the module docstring for the exit status."""
    client = client or client_from(args)
    try:
        result: int = args.handler(args, client, out or sys.stdout)
        return result
    except GatewayError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return REFUSED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return REFUSED
    finally:
        client.close()


def gateway_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("GYRE_GATEWAY_URL", DEFAULT_GATEWAY_URL),
                        help="gateway URL (default: $GYRE_GATEWAY_URL or http://127.0.0.1:8080)")
    common.add_argument("--key", default=None,
                        help="admin API key (default: $GYRE_API_KEY, else the local stack's <data dir>/api-key)")
    return common


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    common = gateway_options()
    evaluate = sub.add_parser(
        "eval", help="golden sets and evaluation runs: store, run, show, compare, synthesize",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = evaluate.add_subparsers(dest="action", required=True)

    sets = actions.add_parser("sets", help="golden sets: put, list, show, export")
    sets_actions = sets.add_subparsers(dest="sets_action", required=True)
    put = sets_actions.add_parser("put", parents=[common], help="store a JSONL file as the set's next version")
    put.add_argument("name")
    put.add_argument("file", help="JSONL, one item a line ('-': standard input)")
    sets_actions.add_parser("list", parents=[common], help="every set: versions, items, checksum")
    for action, text in (("show", "counts and the first items of a version"), ("export", "a version as JSONL")):
        parser = sets_actions.add_parser(action, parents=[common], help=text)
        parser.add_argument("name")
        parser.add_argument("--version", type=non_negative_int, default=0, help="default: the latest")
        if action == "export":
            parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    sets.set_defaults(handler=cmd_sets)
    feedback = sets_actions.add_parser(
        "from-feedback", parents=[common], help="golden items from a tenant's rated answers (FeedbackRecorded)"
    )
    feedback.add_argument("--tenant", required=True)
    target = feedback.add_mutually_exclusive_group()
    target.add_argument("-o", "--output", help="file to write (default: standard output)")
    target.add_argument("--put", metavar="NAME", help="store the items as golden set NAME through the gateway")
    feedback.set_defaults(handler=cmd_from_feedback)

    run = actions.add_parser("run", parents=[common], help="evaluate a golden set; prints the evaluation id")
    run.add_argument("set")
    run.add_argument("--set-version", type=non_negative_int, default=0, help="default: the latest")
    run.add_argument("--prompt-label", help="prompt template label (default: production)")
    run.add_argument("--model", help="generation model id or version (default: the served one)")
    run.add_argument("--mode", choices=("hybrid", "dense", "sparse"), help="retrieval mode (default: hybrid)")
    run.add_argument("--top-k", type=non_negative_int, help="chunks retrieved per question (default: the deployment's)")
    run.add_argument("--max-tokens", type=non_negative_int, help="answer length limit (default: the deployment's)")
    run.add_argument("--temperature", type=float, help="sampling temperature (default: 0, greedy)")
    run.add_argument("--seed", type=int, help="sampling seed")
    run.add_argument("--baseline", help="evaluation id to compare with and gate against")
    run.add_argument("--floor", type=parse_floor, action="append", default=[], metavar="METRIC=VALUE",
                     help="worst acceptable value of a metric; repeatable")
    run.add_argument("--wait", action="store_true", help="follow the run, print its metrics, exit 1 if it fails")
    run.add_argument("--poll-s", type=float, default=2.0, help="seconds between progress reads with --wait")
    run.set_defaults(handler=cmd_run)

    show = actions.add_parser("show", parents=[common], help="a run: status, metrics, gate, comparison")
    show.add_argument("id")
    show.add_argument("--items", action="store_true", help="also every item: verdict, question, answer")
    show.add_argument("--report", metavar="FILE", help="save the markdown report to FILE")
    show.add_argument("--chart", metavar="FILE", help="save the comparison chart (PNG) to FILE")
    show.set_defaults(handler=cmd_show)

    compare = actions.add_parser("compare", parents=[common], help="two runs' metrics side by side")
    compare.add_argument("baseline")
    compare.add_argument("candidate")
    compare.set_defaults(handler=cmd_compare)

    synth = actions.add_parser("synth", parents=[common], help="synthetic items from a tenant's indexed documents")
    synth.add_argument("--tenant", required=True)
    synth.add_argument("--n", type=non_negative_int, required=True, help="items to write (fewer from a small corpus)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--unanswerable-share", type=float, default=0.2)
    where = synth.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", help="file to write (default: standard output)")
    where.add_argument("--put", "--name", dest="put", metavar="NAME",
                       help="store the items as golden set NAME through the gateway instead")
    synth.set_defaults(handler=cmd_synth)
    evaluate.set_defaults(func=cmd_eval)
