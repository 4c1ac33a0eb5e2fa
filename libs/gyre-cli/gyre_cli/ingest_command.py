"""`gyre ingest PATH|URL ...`: submit files, folders and web pages through the gateway, wait, summarise, resume.

Exit status: 0 when every input was read (or fetched) and accepted by the gateway for ingestion,
even if ingest then rejected some (rejections are reported, not failures); 1 when at least one
input could not be read, fetched or submitted (or the API key was refused); 2 for bad arguments;
130 when interrupted (the state file keeps what was done, so a re-run resumes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from gyre_cli.client import read_local_api_key
from gyre_cli.ingest_inputs import DEFAULT_INCLUDE, InputError, collect_inputs
from gyre_cli.ingest_progress import ProgressBar
from gyre_cli.ingest_run import (
    DEFAULT_CONCURRENCY,
    DEFAULT_FETCH_TIMEOUT_S,
    DEFAULT_MAX_BYTES,
    DEFAULT_WAIT_TIMEOUT_S,
    ApiKeyRefused,
    IngestOptions,
    ingest,
)
from gyre_cli.ingest_state import STATE_FILE_NAME, IngestState, state_scope
from gyre_cli.ingest_summary import format_summary, summarise
from gyre_runtime.config import load_settings


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def add_ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="PATH|URL",
                        help="files, folders (recursive) and http(s) URLs")
    parser.add_argument("--gateway", default=os.environ.get("GYRE_GATEWAY_URL", "http://127.0.0.1:8080"),
                        help="gateway URL (default: $GYRE_GATEWAY_URL or http://127.0.0.1:8080)")
    parser.add_argument("--api-key", default=None,
                        help="API key (default: $GYRE_API_KEY, else the local stack's <data dir>/api-key)")
    parser.add_argument("--include", action="append", default=None, metavar="GLOB",
                        help="take files in folders matching GLOB (name or path under the folder); repeatable; "
                             f"replaces the default {' '.join(DEFAULT_INCLUDE)}")
    parser.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                        help="skip files and folders matching GLOB; repeatable")
    parser.add_argument("--hidden", action="store_true", help="also take files and folders whose name starts with .")
    parser.add_argument("--id-prefix", default="", help="prepended to every document id")
    parser.add_argument("--max-bytes", type=positive_int, default=DEFAULT_MAX_BYTES,
                        help="largest file or download, in bytes (default 20 MiB); a download is stopped past it")
    parser.add_argument("--fetch-timeout", type=positive_float, default=DEFAULT_FETCH_TIMEOUT_S,
                        help="seconds a URL may take to download, all of it (default 30)")
    parser.add_argument("--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY,
                        help="requests in flight at once (default 4)")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="state file for resumable re-runs (default <data dir>/ingest-state.json)")
    parser.add_argument("--force", action="store_true", help="resubmit unchanged documents too")
    parser.add_argument("--no-wait", dest="wait", action="store_false",
                        help="submit only; do not wait for each document's verdict")
    parser.add_argument("--timeout", type=positive_float, default=DEFAULT_WAIT_TIMEOUT_S,
                        help="stop waiting for verdicts after this many seconds in which no document was "
                             "submitted or settled (default 600); what is left is reported as still pending")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar on stderr")


def options_from(args: argparse.Namespace) -> IngestOptions:
    return IngestOptions(
        concurrency=args.concurrency,
        max_bytes=args.max_bytes,
        fetch_timeout_s=args.fetch_timeout,
        wait=args.wait,
        wait_timeout_s=args.timeout,
        force=args.force,
    )


def run_ingest_command(args: argparse.Namespace) -> int:
    """``gyre ingest``: see the module docstring for the exit status."""
    settings = load_settings()
    api_key = args.api_key or os.environ.get("GYRE_API_KEY") or read_local_api_key(settings.data_path)
    if not api_key:
        print("error: no API key: pass --api-key, set GYRE_API_KEY, or start the local stack (`gyre up`)",
              file=sys.stderr)
        return 2
    state_path = Path(args.state) if args.state else settings.data_path / STATE_FILE_NAME
    try:
        inputs = collect_inputs(
            args.inputs, include=tuple(args.include or DEFAULT_INCLUDE), exclude=tuple(args.exclude),
            id_prefix=args.id_prefix, hidden=args.hidden,
        )
        state = IngestState.load(state_path, state_scope(args.gateway, api_key))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("nothing to ingest: no file matched (see --include, --exclude, --hidden)")
        return 0
    progress = ProgressBar(len(inputs), enabled=None if args.progress else False)
    options = options_from(args)
    try:
        outcomes = asyncio.run(
            ingest(inputs, gateway_url=args.gateway, api_key=api_key, state=state, options=options,
                   progress=progress)
        )
    except ApiKeyRefused as exc:
        print(f"error: the gateway refused the API key: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: progress kept in {state_path}; run the same command again to resume", file=sys.stderr)
        return 130
    summary = summarise(outcomes)
    print(format_summary(summary, wait_timeout_s=options.wait_timeout_s if options.wait else None))
    return summary.exit_code

