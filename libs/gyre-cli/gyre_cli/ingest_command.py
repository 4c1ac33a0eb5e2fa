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
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

import httpx

from gyre_cli.client import AsyncGatewayClient, DocumentState, GatewayError
from gyre_cli.ingest_inputs import (
    DEFAULT_INCLUDE,
    Input,
    InputError,
    Loaded,
    LoadError,
    UrlInput,
    collect_inputs,
    fetch_url,
    read_file,
    sha256_of,
)
from gyre_cli.ingest_state import STATE_FILE_NAME, IngestState, StateEntry, plan_for, state_scope
from gyre_runtime.config import load_settings

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_FETCH_TIMEOUT_S = 30.0
DEFAULT_CONCURRENCY = 4
DEFAULT_WAIT_TIMEOUT_S = 600.0
DUPLICATE_CODES = frozenset({"duplicate", "near_duplicate"})
USER_AGENT = "gyre-ingest/0.1"
POLL_INTERVAL_S = 0.5
STATE_SAVE_INTERVAL_S = 1.0
MAX_PROBLEM_LINES = 50


# ---------------------------------------------------------------- outcomes and the summary


OutcomeKind = Literal["indexed", "rejected", "deleted", "pending", "unchanged", "fetch_failed", "submit_failed"]


@dataclass(frozen=True)
class Outcome:
    document_id: str
    kind: OutcomeKind
    reasons: tuple[str, ...] = ()  # rejection codes, or the one failure code
    message: str = ""


@dataclass
class Summary:
    accepted: int = 0
    rejected: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    unchanged: int = 0
    deleted: int = 0
    pending: int = 0
    fetch_failed: Counter[str] = field(default_factory=Counter)
    submit_failed: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.fetch_failed.values()) + sum(self.submit_failed.values())

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def is_duplicate(reasons: Iterable[str]) -> bool:
    return any(code in DUPLICATE_CODES for code in reasons)


def summarise(outcomes: Iterable[Outcome]) -> Summary:
    """Counts by verdict; a rejection naming a duplicate counts as a duplicate, not under its reasons."""
    summary = Summary()
    for outcome in outcomes:
        if outcome.kind == "indexed":
            summary.accepted += 1
        elif outcome.kind == "unchanged":
            summary.unchanged += 1
        elif outcome.kind == "pending":
            summary.pending += 1
        elif outcome.kind == "deleted":
            summary.deleted += 1
        elif outcome.kind == "rejected" and is_duplicate(outcome.reasons):
            summary.duplicates += 1
            summary.problems.append(f"duplicate  {outcome.document_id}: {outcome.message}")
        elif outcome.kind == "rejected":
            summary.rejected += 1
            summary.rejected_by_reason.update(outcome.reasons or ("unknown",))
            summary.problems.append(f"rejected   {outcome.document_id}: {outcome.message}")
        elif outcome.kind == "fetch_failed":
            summary.fetch_failed.update(outcome.reasons)
            summary.problems.append(f"not read   {outcome.document_id}: {outcome.message}")
        else:
            summary.submit_failed.update(outcome.reasons)
            summary.problems.append(f"not sent   {outcome.document_id}: {outcome.message}")
    return summary


def _by_reason(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{code}: {n}" for code, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))) + ")"


def format_summary(summary: Summary, *, wait_timeout_s: float | None = None) -> str:
    lines = [
        f"accepted: {summary.accepted}",
        f"rejected: {summary.rejected}{_by_reason(summary.rejected_by_reason)}",
        f"duplicates: {summary.duplicates}",
        f"unchanged: {summary.unchanged}",
        f"failed to fetch: {sum(summary.fetch_failed.values())}{_by_reason(summary.fetch_failed)}",
        f"failed to submit: {sum(summary.submit_failed.values())}{_by_reason(summary.submit_failed)}",
    ]
    if summary.deleted:
        lines.append(f"deleted meanwhile: {summary.deleted}")
    if summary.pending:
        waited = f" after {wait_timeout_s:g} s without progress" if wait_timeout_s is not None else " (not waited for)"
        lines.append(f"still pending{waited}: {summary.pending} (see GET /v1/documents/{{id}}; a re-run resumes)")
    shown = summary.problems[:MAX_PROBLEM_LINES]
    if shown:
        lines.append("")
        lines.extend(shown)
        if len(summary.problems) > len(shown):
            lines.append(f"... and {len(summary.problems) - len(shown)} more")
    return "\n".join(lines)


# ---------------------------------------------------------------- progress bar


class ProgressBar:
    """One line on stderr, redrawn at most ten times a second; silent when stderr is not a terminal."""

    WIDTH = 28

    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self.submitted = 0
        self.failed = 0
        self._drawn_at = 0.0

    def update(self, *, done: int = 0, submitted: int = 0, failed: int = 0) -> None:
        self.done += done
        self.submitted += submitted
        self.failed += failed
        self.draw()

    def draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn_at < 0.1):
            return
        self._drawn_at = now
        filled = self.WIDTH * self.done // self.total if self.total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(
            f"\r[{bar}] {self.done}/{self.total} settled, {self.submitted} submitted, {self.failed} failed "
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class IngestOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    max_bytes: int = DEFAULT_MAX_BYTES
    fetch_timeout_s: float = DEFAULT_FETCH_TIMEOUT_S
    wait: bool = True
    wait_timeout_s: float = DEFAULT_WAIT_TIMEOUT_S
    force: bool = False


class ApiKeyRefused(Exception):
    """The gateway answered 401: every other submission would fail the same way."""


@dataclass
class IngestRun:
    """Submits inputs with at most ``concurrency`` requests in flight, then waits for each verdict."""

    gateway: AsyncGatewayClient
    fetcher: httpx.AsyncClient
    state: IngestState
    options: IngestOptions
    progress: ProgressBar
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    awaiting: set[str] = field(default_factory=set)  # submitted, verdict not seen yet
    refused: str | None = None  # the gateway's message if it refused the API key
    _requests: asyncio.Semaphore = field(init=False)
    _saved_at: float = 0.0
    _progress_at: float = 0.0  # when a document was last submitted or settled

    def __post_init__(self) -> None:
        self._requests = asyncio.Semaphore(self.options.concurrency)

    def _finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.document_id] = outcome
        failed = outcome.kind in ("fetch_failed", "submit_failed")
        self.progress.update(done=1, failed=1 if failed else 0)

    def _save_soon(self) -> None:
        if time.monotonic() - self._saved_at >= STATE_SAVE_INTERVAL_S:
            self.state.save()
            self._saved_at = time.monotonic()

    async def _load(self, item: Input) -> Loaded:
        if isinstance(item, UrlInput):
            async with self._requests:
                return await fetch_url(
                    self.fetcher, item.url, max_bytes=self.options.max_bytes, timeout_s=self.options.fetch_timeout_s
                )
        return await asyncio.to_thread(read_file, item.path, self.options.max_bytes)

    async def _state_of(self, document_id: str) -> DocumentState | None:
        async with self._requests:
            return await self.gateway.document_state(document_id)

    async def process(self, item: Input) -> None:
        """Read or fetch, compare with the state file, submit if needed; the verdict is awaited later."""
        try:
            loaded = await self._load(item)
        except LoadError as exc:
            self._finish(Outcome(item.document_id, "fetch_failed", (exc.code,), f"{item.source}: {exc.message}"))
            return
        digest = sha256_of(loaded.data)
        entry = self.state.entries.get(item.document_id)
        plan = plan_for(entry, digest, force=self.options.force)
        if plan == "ask":
            try:
                known = await self._state_of(item.document_id)
            except GatewayError:
                known = None
            if known is not None and known.status == "indexed":
                plan = "skip"
                self.state.entries[item.document_id] = StateEntry(sha256=digest, status="indexed")
            elif known is not None and known.status == "pending":
                self.awaiting.add(item.document_id)  # still in the pipeline: wait for it, do not resend
                self._progress_at = time.monotonic()
                self.progress.update(submitted=1)
                return
            else:
                plan = "submit"
        if plan == "skip":
            self._finish(Outcome(item.document_id, "unchanged"))
            return
        try:
            async with self._requests:
                await self.gateway.submit_content(
                    item.document_id,
                    loaded.data,
                    content_type=loaded.content_type,
                    title=loaded.title,
                    metadata={"source": item.source},
                )
        except GatewayError as exc:
            if exc.status == 401:
                self.refused = exc.message  # every other submission would fail the same way: stop
                return
            self._finish(Outcome(item.document_id, "submit_failed", (exc.code,), f"{item.source}: {exc.message}"))
            return
        self.state.entries[item.document_id] = StateEntry(sha256=digest, status="pending")
        self._save_soon()
        self.awaiting.add(item.document_id)
        self._progress_at = time.monotonic()
        self.progress.update(submitted=1)

    def _settle(self, known: DocumentState) -> None:
        document_id = known.document_id
        self.awaiting.discard(document_id)
        entry = self.state.entries.get(document_id)
        if entry is not None:
            entry.status, entry.reasons = known.status, list(known.reason_codes)
        if known.status == "indexed":
            self._finish(Outcome(document_id, "indexed"))
        elif known.status == "rejected":
            message = "; ".join(f"{code}: {text}" for code, text in known.reasons) or "no reason given"
            self._finish(Outcome(document_id, "rejected", known.reason_codes, message))
        else:
            self._finish(Outcome(document_id, "deleted"))
        self._save_soon()

    async def _poll_once(self, document_id: str) -> None:
        try:
            known = await self._state_of(document_id)
        except GatewayError:
            return  # transient after retries: ask again next round
        if known is None:
            known = DocumentState(document_id=document_id, status="deleted")
        if known.settled:
            self._settle(known)
            self._progress_at = time.monotonic()

    async def wait_for_verdicts(self, submitting: asyncio.Task[None]) -> None:
        """Poll submitted documents (while submission goes on) until each settles.

        Gives up once no document has been submitted or settled for ``wait_timeout_s``: a large
        backlog is waited for as long as it moves; what is left is reported as still pending.
        """
        self._progress_at = time.monotonic()
        while self.awaiting or not submitting.done():
            if self.awaiting:
                await asyncio.gather(*(self._poll_once(d) for d in list(self.awaiting)))
            if time.monotonic() - self._progress_at > self.options.wait_timeout_s:
                for document_id in list(self.awaiting):
                    self._finish(Outcome(document_id, "pending"))
                self.awaiting.clear()
                if submitting.done():
                    return
            if self.awaiting or not submitting.done():
                await asyncio.sleep(POLL_INTERVAL_S)

    async def submit_all(self, inputs: Sequence[Input]) -> None:
        queue: asyncio.Queue[Input] = asyncio.Queue()
        for item in inputs:
            queue.put_nowait(item)

        async def worker() -> None:
            while self.refused is None:
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await self.process(item)

        async with asyncio.TaskGroup() as group:
            for _ in range(self.options.concurrency):
                group.create_task(worker())

    async def run(self, inputs: Sequence[Input]) -> list[Outcome]:
        """Every input's outcome, in input order; ApiKeyRefused if the gateway refused the key."""
        submitting = asyncio.create_task(self.submit_all(inputs))
        waiting = asyncio.create_task(self.wait_for_verdicts(submitting)) if self.options.wait else None
        try:
            await submitting
            if self.refused is not None:
                raise ApiKeyRefused(self.refused)
            if waiting is not None:
                await waiting
            for document_id in list(self.awaiting):  # --no-wait: submitted, verdict not awaited
                self._finish(Outcome(document_id, "pending"))
            self.awaiting.clear()
        finally:
            unfinished = [t for t in (submitting, waiting) if t is not None and not t.done()]
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            self.state.save()
            self.progress.close()
        return [self.outcomes[i.document_id] for i in inputs if i.document_id in self.outcomes]


# ---------------------------------------------------------------- the command


def read_local_api_key(data_dir: Path) -> str | None:
    """The local stack's key (``<data dir>/api-key``, first line, ``key[:tenant]``); None if there is none."""
    try:
        text = (data_dir / "api-key").read_text(encoding="utf-8")
    except OSError:
        return None
    entries = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return entries[0].rsplit(":", 1)[0].strip() if entries else None


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


async def ingest(
    inputs: Sequence[Input],
    *,
    gateway_url: str,
    api_key: str,
    state: IngestState,
    options: IngestOptions,
    progress: ProgressBar,
) -> list[Outcome]:
    """Run one ingestion: the gateway client and the (key-less) URL fetcher live for the run."""
    async with (
        AsyncGatewayClient(gateway_url, api_key) as gateway,
        httpx.AsyncClient(follow_redirects=True, headers={"User-Agent": USER_AGENT}) as fetcher,
    ):
        run = IngestRun(gateway=gateway, fetcher=fetcher, state=state, options=options, progress=progress)
        return await run.run(inputs)


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
