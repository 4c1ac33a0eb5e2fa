"""What a rebuild replays: every ChunksReady still in the GYRE_EMBED stream, read back, and which of them to keep.

The document registry decides: only the version it names as current goes into the new collection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

import msgspec
import nats.errors
from nats.js import api as js_api
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from gyre_contracts import ChunksReady, EnvelopeError, decode_event
from gyre_runtime.bus.connection import Bus
from gyre_runtime.logging import get_logger
from gyre_runtime.state.documents import DocumentRecord

log = get_logger()

DocumentKey = tuple[str, str]  # (tenant, document_id)
Verdict = Literal["keep", "superseded", "deleted", "unregistered"]

EMBED_STREAM = "GYRE_EMBED"
# Messages asked for at once. ChunksReady messages can be large (a whole document's chunks).
FETCH_BATCH = 16
FETCH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StreamPosition:
    first: int
    last: int
    messages: int


async def embed_stream_position(bus: Bus) -> StreamPosition:
    info = await bus.js.stream_info(bus.stream_name(EMBED_STREAM))
    return StreamPosition(first=info.state.first_seq, last=info.state.last_seq, messages=info.state.messages)


@dataclass(frozen=True)
class ReplayedMessage:
    sequence: int
    event: ChunksReady | None  # None: the stored message does not decode
    error: str = ""


async def read_chunks_ready(bus: Bus, *, up_to: int) -> AsyncIterator[ReplayedMessage]:
    """Every ChunksReady stored in GYRE_EMBED, oldest first, up to stream sequence ``up_to``.

    Read through an ephemeral consumer that acknowledges nothing and is deleted afterwards: the
    stream and the service's own durable consumer are left as they were.
    """
    if up_to <= 0:
        return
    stream = bus.stream_name(EMBED_STREAM)
    subject = bus.subject(ChunksReady.subject)
    config = js_api.ConsumerConfig(
        ack_policy=js_api.AckPolicy.NONE,
        deliver_policy=js_api.DeliverPolicy.ALL,
        inactive_threshold=120.0,
        mem_storage=True,
    )
    sub = await bus.js.pull_subscribe(subject, stream=stream, config=config)
    try:
        while True:
            try:
                msgs = await sub.fetch(FETCH_BATCH, timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, nats.errors.TimeoutError):
                return  # nothing left to read
            for msg in msgs:
                sequence = msg.metadata.sequence.stream
                if sequence > up_to:
                    return
                try:
                    event = decode_event(msg.data, ChunksReady, dict(msg.headers or {}))
                    yield ReplayedMessage(sequence, event)
                except EnvelopeError as exc:
                    yield ReplayedMessage(sequence, None, str(exc))
                if sequence >= up_to or msg.metadata.num_pending == 0:
                    return
    finally:
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await bus.js.delete_consumer(stream, info.name)
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


_record = msgspec.json.Decoder(DocumentRecord)


async def registry_records(kv: KeyValue) -> AsyncIterator[DocumentRecord]:
    """The latest record of every document in the registry bucket, read in one pass."""
    watcher = await kv.watchall()
    try:
        async for entry in watcher:
            if entry is None:  # the marker after the last stored entry
                return
            if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
                continue
            try:
                yield _record.decode(entry.value)
            except msgspec.DecodeError as exc:
                log.warning("registry_record_undecodable", key=entry.key, error=str(exc))
    finally:
        with contextlib.suppress(Exception):
            await watcher.stop()  # type: ignore[no-untyped-call]


class ReplaySource(Protocol):
    """Where the stored events and the registry are read from (the bus: :class:`BusReplaySource`)."""

    async def position(self) -> StreamPosition: ...

    def messages(self, *, up_to: int) -> AsyncIterator[ReplayedMessage]: ...

    def records(self) -> AsyncIterator[DocumentRecord]: ...


class BusReplaySource:
    """The replay source of a running deployment: GYRE_EMBED and the ``gyre_documents`` bucket."""

    def __init__(self, bus: Bus, registry_kv: KeyValue) -> None:
        self.bus = bus
        self.registry_kv = registry_kv

    async def position(self) -> StreamPosition:
        return await embed_stream_position(self.bus)

    def messages(self, *, up_to: int) -> AsyncIterator[ReplayedMessage]:
        return read_chunks_ready(self.bus, up_to=up_to)

    def records(self) -> AsyncIterator[DocumentRecord]:
        return registry_records(self.registry_kv)


# ---------------------------------------------------------------------------- which versions are kept


class CurrentVersion(NamedTuple):
    """What the registry says of a document, as far as re-indexing cares."""

    status: str
    version: int
    searchable: bool  # some version of it is in the active collection, per the registry


def current_version(record: DocumentRecord) -> CurrentVersion:
    # A rejected or pending resubmission leaves the previously indexed version searchable.
    searchable = record.status == "indexed" or (
        record.status in ("rejected", "pending") and record.indexed_at is not None and record.version > 0
    )
    return CurrentVersion(record.status, record.version, searchable)


def replay_verdict(current: CurrentVersion | None, version: int) -> Verdict:
    """Whether a replayed ChunksReady of ``version`` belongs in the new collection."""
    if current is None:
        return "unregistered"
    if current.status == "deleted":
        return "deleted"
    if version != current.version:
        return "superseded"
    return "keep"


def missing_documents(
    snapshot: Mapping[DocumentKey, CurrentVersion], holds: Callable[[DocumentKey], bool]
) -> list[DocumentKey]:
    """Searchable documents the new collection does not hold (nor saw deleted while it was built)."""
    return sorted(key for key, current in snapshot.items() if current.searchable and not holds(key))
