"""Worker processes that read documents under a time and a memory limit, so no document can stall ingest.

Reading a document (parsing its format, cleaning, chunking: ``prepare_document``) is CPU-bound Python
that holds the GIL; in a thread it would stop the event loop (heartbeats, /healthz, every other
document) for as long as it runs. Here each document goes to one of N worker processes
(``extraction_worker``). A document that runs past ``timeout_s`` has its worker killed, and is rejected
``extraction_timeout``; one that needs more memory than the worker's address-space limit is rejected
``too_large``. A killed or exhausted worker is replaced in the background, so the pool keeps its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gyre_contracts import DocumentSubmitted, Rejection
from gyre_ingest.extraction_worker import (
    CHILD_ENVIRONMENT,
    FRAME_HEADER_BYTES,
    ExtractionJob,
    ExtractionOutcome,
    WorkerReady,
    WorkerSetup,
    frame,
    frame_length,
)
from gyre_ingest.pipeline import IngestConfig, PiiPolicy, PreparedDocument, Refused
from gyre_runtime.logging import get_logger

log = get_logger()

START_TIMEOUT_S = 120.0  # a cold start imports numpy, lxml, pypdf and loads the tokenizer: seconds, more when busy
STOP_GRACE_S = 5.0
RESPAWN_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class PreparationFailed(RuntimeError):
    """Gyre's own code failed on a document (not the document's fault): the message is retried."""


class WorkerStartError(RuntimeError):
    """A worker process could not start (missing tokenizer, memory limit below what it needs at rest)."""


@dataclass(frozen=True)
class WorkerLimits:
    """What one document may cost its worker."""

    timeout_s: float = 120.0
    memory_bytes: int = 1024 * 1024 * 1024  # address space of the whole worker; 0: no limit

    @property
    def memory_mb(self) -> int:
        return self.memory_bytes // (1024 * 1024)


class _Worker:
    """One worker process and the pipes to it."""

    def __init__(self, process: asyncio.subprocess.Process, ready: WorkerReady) -> None:
        self.process = process
        self.ready = ready

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(cls, setup: bytes) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gyre_ingest.extraction_worker",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **CHILD_ENVIRONMENT},
        )  # fmt: skip
        worker = cls(process, WorkerReady(pid=process.pid, memory_at_rest_bytes=0, memory_limited=False))
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                ready = msgspec.msgpack.decode(await worker.exchange(setup), type=WorkerReady)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, msgspec.DecodeError) as exc:
            await worker.kill()
            raise WorkerStartError(f"an extraction worker did not start: {type(exc).__name__}: {exc}") from exc
        except BaseException:  # cancelled while starting: leave no process behind
            await asyncio.shield(worker.kill())
            raise
        if ready.error:
            await worker.kill()
            raise WorkerStartError(f"an extraction worker could not start: {ready.error}")
        worker.ready = ready
        return worker

    async def exchange(self, request: bytes) -> bytes:
        """Sends one frame and reads the reply frame."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(request)
        await self.process.stdin.drain()
        header = await self.process.stdout.readexactly(FRAME_HEADER_BYTES)
        return await self.process.stdout.readexactly(frame_length(header))

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()

    async def stop(self) -> None:
        """Closes its stdin (the worker exits at the end of it), then kills it if it does not."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        except TimeoutError:
            await self.kill()

    async def how_it_ended(self) -> str:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), STOP_GRACE_S)
        code = self.process.returncode
        if code is None:
            return "stopped answering"
        if code < 0:
            with contextlib.suppress(ValueError):
                return f"was ended by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class ExtractionPool:
    """``size`` worker processes; ``prepare`` reads one document in one of them, waiting for a free one."""

    def __init__(self, tokenizer_path: Path, config: IngestConfig, limits: WorkerLimits, size: int) -> None:
        if size < 1:
            raise ValueError(f"an extraction pool needs at least one worker, not {size}")
        self.limits = limits
        self.size = size
        self._setup = frame(
            msgspec.msgpack.encode(
                WorkerSetup(tokenizer_path=str(tokenizer_path), config=config, memory_limit_bytes=limits.memory_bytes)
            )
        )
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._workers: set[_Worker] = set()
        self._respawns: set[asyncio.Task[None]] = set()
        self._jobs = msgspec.msgpack.Encoder()
        self._outcomes = msgspec.msgpack.Decoder(ExtractionOutcome)
        self._closed = False
        self.peak_memory_bytes = 0  # the largest resident set any worker has reported

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (busy or idle)."""
        return sorted(w.pid for w in self._workers)

    @property
    def idle(self) -> int:
        """Workers waiting for a document."""
        return self._idle.qsize()

    async def start(self) -> None:
        """Starts every worker; raises ``WorkerStartError`` (after stopping those that did start) if one fails."""
        started = await asyncio.gather(*(_Worker.start(self._setup) for _ in range(self.size)), return_exceptions=True)
        failures = [r for r in started if isinstance(r, BaseException)]
        workers = [r for r in started if isinstance(r, _Worker)]
        if failures:
            await asyncio.gather(*(w.stop() for w in workers))
            raise failures[0]
        for worker in workers:
            self._adopt(worker)
        ready = workers[0].ready
        log.info(
            "extraction_workers_ready", workers=self.size, timeout_s=self.limits.timeout_s,
            memory_limit_mb=self.limits.memory_mb if ready.memory_limited else None,
            memory_at_rest_mb=ready.memory_at_rest_bytes // 2**20,
        )  # fmt: skip
        if self.limits.memory_bytes and not ready.memory_limited:
            log.warning("extraction_memory_not_limited", reason="this system does not enforce RLIMIT_AS")

    async def prepare(self, event: DocumentSubmitted, pii_policy: PiiPolicy) -> PreparedDocument | Refused:
        """``prepare_document`` in a worker: its outcome, or a ``Refused`` when the document broke a limit.

        Raises ``PreparationFailed`` when Gyre's own code failed on the document (the caller retries).
        """
        job = frame(self._jobs.encode(ExtractionJob(event=event, pii_policy=pii_policy)))
        worker = await self._idle.get()
        try:
            async with asyncio.timeout(self.limits.timeout_s):
                reply = await worker.exchange(job)
        except TimeoutError:
            self._replace(worker)
            log.warning(
                "extraction_timeout", document_id=event.document_id, tenant=event.tenant,
                timeout_s=self.limits.timeout_s, worker_pid=worker.pid,
            )  # fmt: skip
            return _refused(
                "extraction_timeout",
                f"reading the document took longer than {self.limits.timeout_s:g} s (GYRE_EXTRACTION_TIMEOUT_S) "
                "and was stopped",
            )
        except (OSError, asyncio.IncompleteReadError):
            ended = await worker.how_it_ended()
            self._replace(worker)
            log.error("extraction_worker_died", document_id=event.document_id, tenant=event.tenant,
                      worker_pid=worker.pid, ended=ended)
            return _refused(
                "extraction_failed",
                f"the worker reading the document {ended}; a document that needs more memory than "
                f"{self.limits.memory_mb} MB (GYRE_EXTRACTION_MEMORY_MB) can end it this way",
            )
        except BaseException:  # cancelled mid-document (the consumer's time limit, shutdown): its answer is void
            self._replace(worker)
            raise
        outcome = self._outcomes.decode(reply)
        self.peak_memory_bytes = max(self.peak_memory_bytes, outcome.peak_memory_bytes)
        if outcome.out_of_memory:
            log.warning("extraction_out_of_memory", document_id=event.document_id, tenant=event.tenant,
                        memory_limit_mb=self.limits.memory_mb, worker_pid=worker.pid)
            self._replace(worker)
        else:
            self._idle.put_nowait(worker)
        if outcome.error:
            raise PreparationFailed(outcome.error)
        if outcome.prepared is not None:
            return outcome.prepared
        assert outcome.refused is not None
        return outcome.refused

    async def close(self) -> None:
        self._closed = True
        for task in self._respawns:
            task.cancel()
        await asyncio.gather(*self._respawns, return_exceptions=True)
        workers, self._workers = list(self._workers), set()
        await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)

    def _adopt(self, worker: _Worker) -> None:
        self._workers.add(worker)
        self._idle.put_nowait(worker)

    def _replace(self, worker: _Worker) -> None:
        """Kills ``worker`` and starts another in the background; the pool's size comes back when it is up."""
        self._workers.discard(worker)
        task = asyncio.create_task(self._respawn(worker), name="extraction-worker-respawn")
        self._respawns.add(task)
        task.add_done_callback(self._respawns.discard)

    async def _respawn(self, dead: _Worker) -> None:
        await dead.kill()
        attempt = 0
        while not self._closed:
            try:
                worker = await _Worker.start(self._setup)
            except WorkerStartError as exc:
                delay = RESPAWN_DELAYS_S[min(attempt, len(RESPAWN_DELAYS_S) - 1)]
                log.error("extraction_worker_start_failed", error=str(exc), retry_in_s=delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._closed:
                await worker.stop()
                return
            self._adopt(worker)
            return


def _refused(code: str, message: str) -> Refused:
    return Refused([Rejection(code=code, message=message)])
