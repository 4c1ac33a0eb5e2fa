"""The extraction worker process: runs ``prepare_document`` on one document at a time under a memory limit.

The ingest service starts a few of these (``extraction_pool``) and talks to each over its stdin and stdout:
length-prefixed MessagePack frames, typed on both sides, so a worker that a hostile document took over
can send nothing but these types back. Run as ``python -m gyre_ingest.extraction_worker``.
"""

from __future__ import annotations

import os
import resource
import struct
import sys
from typing import BinaryIO

import msgspec
from tokenizers import Tokenizer

from gyre_contracts import DocumentSubmitted, Rejection
from gyre_ingest.pipeline import IngestConfig, PiiPolicy, PreparedDocument, Refused, prepare_document

# Keep each worker single-threaded: the pool already gives one process per document in flight, and thread
# pools (the tokenizer's, BLAS's) and one malloc arena per thread would only add to the address space the
# memory limit counts.
CHILD_ENVIRONMENT = {
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
_LENGTH = struct.Struct(">I")


class WorkerSetup(msgspec.Struct, frozen=True, kw_only=True):
    """The first frame a worker reads: what it needs for every document."""

    tokenizer_path: str
    config: IngestConfig
    memory_limit_bytes: int  # address space; 0: no limit


class WorkerReady(msgspec.Struct, frozen=True, kw_only=True):
    """The worker's answer to its setup: ready, or why it cannot work."""

    pid: int
    memory_at_rest_bytes: int
    memory_limited: bool
    error: str = ""


class ExtractionJob(msgspec.Struct, frozen=True, kw_only=True):
    event: DocumentSubmitted
    pii_policy: str


class ExtractionOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One document's result; ``error`` is a failure of Gyre's own code (retried), not of the document."""

    prepared: PreparedDocument | None = None
    refused: Refused | None = None
    error: str = ""
    out_of_memory: bool = False  # the worker hit its limit: the pool replaces it, to start clean
    peak_memory_bytes: int = 0  # the worker's largest resident set so far


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """The next frame, or None at the end of the stream (the pool closed the pipe, or died)."""
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


def frame_length(header: bytes) -> int:
    (length,) = _LENGTH.unpack(header)
    return int(length)


FRAME_HEADER_BYTES = _LENGTH.size


def address_space_bytes() -> int:
    """This process's current address space (Linux; 0 where /proc does not say)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_resident_bytes() -> int:
    """This process's peak resident set since it started its program.

    On Linux from /proc (VmHWM, which starts again at exec): ``ru_maxrss`` of a process forked from a
    large one (a service, a test runner) keeps the parent's size at the fork, whatever the worker uses.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


def limit_memory(limit_bytes: int) -> bool:
    """Caps this process's address space; False where the system does not enforce it (macOS)."""
    if limit_bytes <= 0:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    except (ValueError, OSError):
        return False
    return True


def load_tokenizer(path: str) -> Tokenizer:
    tokenizer = Tokenizer.from_file(path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def _import_readers() -> None:
    """Imports every format's reader now, before the memory limit, so a first PDF does not pay for pypdf."""
    import gyre_ingest.formats.csv
    import gyre_ingest.formats.docx
    import gyre_ingest.formats.html
    import gyre_ingest.formats.jsonl
    import gyre_ingest.formats.markdown
    import gyre_ingest.formats.pdf
    import gyre_ingest.formats.text  # noqa: F401


def handle(
    job: ExtractionJob, tokenizer: Tokenizer, config: IngestConfig, memory_limit_bytes: int
) -> ExtractionOutcome:
    try:
        outcome = prepare_document(job.event, tokenizer, config, _policy(job.pii_policy))
    except MemoryError:
        limit_mb = memory_limit_bytes // (1024 * 1024)
        refused = Refused(
            [
                Rejection(
                    code="too_large",
                    message=f"reading the document needed more than the {limit_mb} MB a document may use "
                    "(GYRE_EXTRACTION_MEMORY_MB)",
                )
            ]
        )
        return ExtractionOutcome(refused=refused, out_of_memory=True, peak_memory_bytes=peak_resident_bytes())
    except Exception as exc:  # Gyre's own failure, not the document's: the pool raises it and the message is retried
        return ExtractionOutcome(error=f"{type(exc).__name__}: {exc}", peak_memory_bytes=peak_resident_bytes())
    if isinstance(outcome, Refused):
        return ExtractionOutcome(refused=outcome, peak_memory_bytes=peak_resident_bytes())
    return ExtractionOutcome(prepared=outcome, peak_memory_bytes=peak_resident_bytes())


def _policy(name: str) -> PiiPolicy:
    if name not in ("redact", "reject", "allow"):
        raise ValueError(f"unknown personal data policy {name!r}")
    return name  # type: ignore[return-value]


def main() -> None:
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # whatever a library prints goes to the log, not the replies
    setup_frame = read_frame(requests)
    if setup_frame is None:
        return
    setup = msgspec.msgpack.decode(setup_frame, type=WorkerSetup)
    encoder = msgspec.msgpack.Encoder()
    jobs = msgspec.msgpack.Decoder(ExtractionJob)
    try:
        tokenizer = load_tokenizer(setup.tokenizer_path)
        _import_readers()
    except Exception as exc:
        ready = WorkerReady(pid=os.getpid(), memory_at_rest_bytes=0, memory_limited=False, error=str(exc))
        write_frame(replies, encoder.encode(ready))
        return
    at_rest = address_space_bytes()
    if setup.memory_limit_bytes and at_rest >= setup.memory_limit_bytes:
        error = (
            f"the memory limit of {setup.memory_limit_bytes // 2**20} MB is below what a worker uses at rest "
            f"({at_rest // 2**20} MB): raise GYRE_EXTRACTION_MEMORY_MB"
        )
        write_frame(replies, encoder.encode(WorkerReady(pid=os.getpid(), memory_at_rest_bytes=at_rest,
                                                        memory_limited=False, error=error)))
        return
    limited = limit_memory(setup.memory_limit_bytes)
    write_frame(replies, encoder.encode(WorkerReady(pid=os.getpid(), memory_at_rest_bytes=at_rest,
                                                    memory_limited=limited)))
    while (payload := read_frame(requests)) is not None:
        outcome = handle(jobs.decode(payload), tokenizer, setup.config, setup.memory_limit_bytes)
        del payload
        write_frame(replies, encoder.encode(outcome))


if __name__ == "__main__":
    main()
