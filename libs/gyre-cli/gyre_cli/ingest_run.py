"""One `gyre ingest` run: submit inputs with bounded concurrency, poll for verdicts, keep the state file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from gyre_cli.client import AsyncGatewayClient, DocumentState, GatewayError
from gyre_cli.ingest_inputs import Input, Loaded, LoadError, UrlInput, fetch_url, read_file, sha256_of
from gyre_cli.ingest_progress import ProgressBar
from gyre_cli.ingest_state import IngestState, StateEntry, plan_for
from gyre_cli.ingest_summary import Outcome

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_FETCH_TIMEOUT_S = 30.0
DEFAULT_CONCURRENCY = 4
DEFAULT_WAIT_TIMEOUT_S = 600.0
USER_AGENT = "gyre-ingest/0.1"
POLL_INTERVAL_S = 0.5
STATE_SAVE_INTERVAL_S = 1.0


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
        self.progress.start()
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

