"""The document registry: status, version, reasons, chunk count and timings of every document, and its order.

Order: a document's versions are numbered when they are SENT (the gateway's compare-and-set on the
record; ingest's for events other systems publish without one), never when their work finishes. A
deletion is a tombstone naming the last version sent before it (``deleted_up_to_version``): versions
up to it are gone for good, a later one is a resubmission. Work on a version that a tombstone covers
or a newer version replaces is dropped, so the document always ends in the state of the last
operation sent, whatever order workers finish in. The record also lists the bus messages that hold
the document's content, so a deletion can purge them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

import msgspec

from gyre_contracts import Rejection
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_store import KvStore, compare_and_set, read

Status = Literal["pending", "indexed", "rejected", "deleted"]
Verdict = Literal["current", "superseded", "deleted"]

# Submissions without a version of their own (other systems' events) whose version ingest remembers,
# so a redelivery gets the same one; and bus messages remembered for purging. Both bounded: a record
# is read on every operation on its document.
MAX_ASSIGNED = 32
MAX_STORED_MESSAGES = 256


class StoredMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A message on the bus that carries the document's content: purged when the document is deleted."""

    stream: str  # topology name: GYRE_INGEST (the raw submission) or GYRE_EMBED (its chunks)
    sequence: int  # the message's stream sequence
    version: int  # the document version it carries


class AssignedVersion(msgspec.Struct, frozen=True, kw_only=True):
    """The version ingest gave a submission that came without one."""

    submission_id: str
    version: int


class DocumentRecord(msgspec.Struct, kw_only=True):
    document_id: str
    tenant: str
    status: Status = "pending"  # the outcome of the last operation sent (pending until known)
    version: int = 0  # the version accepted last: the one indexed, or being embedded
    submission_id: str = ""
    content_hash: str = ""
    chunks: int = 0
    reasons: list[Rejection] = msgspec.field(default_factory=list)
    title: str = ""
    submitted_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    indexed_at: dt.datetime | None = None
    embedding_model: str = ""
    submissions: int = 0  # the last version number handed out (one per submission sent)
    deleted_up_to_version: int = 0  # tombstone: versions up to this one were deleted
    # GYRE_INGEST's last stream sequence when the latest deletion was sent: a submission without a
    # version stored at or before it was sent before the deletion.
    deleted_ingest_watermark: int = 0
    assigned: list[AssignedVersion] = msgspec.field(default_factory=list)
    stored_messages: list[StoredMessage] = msgspec.field(default_factory=list)

    @property
    def deleted(self) -> bool:
        """The last operation sent was a deletion."""
        return self.submissions > 0 and self.deleted_up_to_version >= self.submissions


_decoder = msgspec.json.Decoder(DocumentRecord)


def decode_record(data: bytes) -> DocumentRecord:
    """A stored record; those written before versions were numbered when sent get their counters."""
    record = _decoder.decode(data)
    record.submissions = max(record.submissions, record.version)
    if record.status == "deleted" and not record.deleted_up_to_version:
        record.deleted_up_to_version = record.submissions
    return record


# ---------------------------------------------------------------- operations sent


def with_new_version(
    current: DocumentRecord | None, *, tenant: str, document_id: str, title: str, submitted_at: dt.datetime
) -> DocumentRecord:
    """The record once a submission is sent: the next version number is its own, status pending.

    What was indexed stays (searchable) until the new version is; a deleted document stays deleted
    for search until the new version is indexed.
    """
    base = current or DocumentRecord(document_id=document_id, tenant=tenant)
    return msgspec.structs.replace(
        base, status="pending", submissions=base.submissions + 1, title=title or base.title, reasons=[],
        submitted_at=submitted_at,
    )


def with_tombstone(
    current: DocumentRecord, *, up_to_version: int | None = None, ingest_watermark: int = 0
) -> DocumentRecord:
    """The record once a deletion is sent: versions up to ``up_to_version`` (default: every one sent) deleted.

    A deletion that names an older version than the last one sent (another system's late event)
    deletes what it names; the newer version stands.
    """
    up_to = current.submissions if up_to_version is None else min(up_to_version, current.submissions)
    up_to = max(up_to, current.deleted_up_to_version)
    record = msgspec.structs.replace(
        current, deleted_up_to_version=up_to,
        deleted_ingest_watermark=max(ingest_watermark, current.deleted_ingest_watermark),
    )
    if record.deleted:
        record.status, record.chunks, record.indexed_at, record.reasons = "deleted", 0, None, []
    return record


def assigned_version(record: DocumentRecord | None, submission_id: str) -> int:
    """The version ingest gave this version-less submission before (a redelivery), or 0."""
    if record is None:
        return 0
    return next((a.version for a in record.assigned if a.submission_id == submission_id), 0)


def sent_before_deletion(record: DocumentRecord | None, stream_sequence: int) -> bool:
    """A version-less submission stored on the bus before the latest deletion was sent: it is stale."""
    return record is not None and 0 < stream_sequence <= record.deleted_ingest_watermark


def with_assigned_version(
    current: DocumentRecord | None, *, tenant: str, document_id: str, submission_id: str, submitted_at: dt.datetime,
    title: str,
) -> DocumentRecord | None:
    """Number a version-less submission when ingest first sees it (None: it has its number already)."""
    if assigned_version(current, submission_id):
        return None
    record = with_new_version(current, tenant=tenant, document_id=document_id, title=title, submitted_at=submitted_at)
    record.assigned = [*record.assigned, AssignedVersion(submission_id=submission_id, version=record.submissions)]
    record.assigned = record.assigned[-MAX_ASSIGNED:]
    return record


# ---------------------------------------------------------------- is this work still wanted?


def submission_verdict(record: DocumentRecord | None, version: int) -> Verdict:
    """Ingest: a submission is dropped once a deletion sent after it or a newer submission exists."""
    if record is None or version == 0:
        return "current"
    if version <= record.deleted_up_to_version:
        return "deleted"
    if record.submissions > version:
        return "superseded"
    return "current"


def indexing_verdict(record: DocumentRecord | None, version: int) -> Verdict:
    """Embed: a version's chunks are dropped once a deletion covers it or a newer version was accepted.

    A newer submission that ingest has not decided on yet does not stop it: if that one is rejected,
    this version is what stays searchable.
    """
    if record is None:
        return "current"
    if version <= record.deleted_up_to_version:
        return "deleted"
    if record.version > version:
        return "superseded"
    return "current"


# ---------------------------------------------------------------- the content on the bus


def with_stored_message(current: DocumentRecord | None, message: StoredMessage) -> DocumentRecord | None:
    """Remember a message holding the document's content (None: no record, or already remembered)."""
    if current is None or message in current.stored_messages:
        return None
    kept = [*current.stored_messages, message][-MAX_STORED_MESSAGES:]
    return msgspec.structs.replace(current, stored_messages=kept)


def messages_to_purge(record: DocumentRecord | None) -> list[StoredMessage]:
    """The remembered messages of deleted versions."""
    if record is None:
        return []
    return [m for m in record.stored_messages if m.version <= record.deleted_up_to_version]


def without_messages(current: DocumentRecord | None, purged: list[StoredMessage]) -> DocumentRecord | None:
    if current is None or not purged:
        return None
    return msgspec.structs.replace(current, stored_messages=[m for m in current.stored_messages if m not in purged])


def document_key(tenant: str, document_id: str) -> str:
    return f"{encode_key_part(tenant)}.{encode_key_part(document_id)}"


class DocumentRegistry(KvStore):
    """Reads and compare-and-set updates of document records in the ``gyre_documents`` bucket."""

    bucket = buckets.DOCUMENTS

    async def get(self, tenant: str, document_id: str) -> DocumentRecord | None:
        return (await read(self.kv, document_key(tenant, document_id), decode_record)).value

    async def update(
        self,
        tenant: str,
        document_id: str,
        change: Callable[[DocumentRecord | None], DocumentRecord | None],
    ) -> DocumentRecord | None:
        """Apply ``change`` atomically (compare-and-set); ``None`` from change writes nothing."""
        return await compare_and_set(
            self.kv, document_key(tenant, document_id), change, decode=decode_record,
            what=f"document record {document_id!r}",
        )
