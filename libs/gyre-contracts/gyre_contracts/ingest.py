"""Document ingestion events: submitted, accepted, rejected, deletion requested."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar

import msgspec

from gyre_contracts.base import Event, Model, utc_now


class DocumentSubmitted(Event, frozen=True, kw_only=True, tag="gyre.ingest.submitted.v1"):
    """A document to ingest. Exactly one of ``text`` or ``content`` (base64) is set."""

    subject: ClassVar[str] = "ingest.submitted"
    document_id: str
    text: str | None = None
    content: str | None = None
    content_type: str = "text/plain"
    title: str = ""
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    source: str = "api"
    submission_id: str = ""
    submitted_at: dt.datetime = msgspec.field(default_factory=utc_now)
    # The version this submission becomes, fixed when it is sent (the gateway's compare-and-set on the
    # document's registry record), so versions follow the order of sending; 0 when the publisher leaves
    # it out: ingest assigns one when it first sees the submission.
    version: Annotated[int, msgspec.Meta(ge=0)] = 0


class Rejection(Model, frozen=True, kw_only=True):
    """One reason a document was rejected: a stable code and a human explanation."""

    code: str
    message: str


class DocumentAccepted(Event, frozen=True, kw_only=True, tag="gyre.ingest.accepted.v1"):
    subject: ClassVar[str] = "ingest.accepted"
    document_id: str
    version: int
    content_hash: str
    chunk_count: int
    characters: int
    submitted_at: dt.datetime
    content_type: str = ""
    pii_found: dict[str, int] = msgspec.field(default_factory=dict)
    pii_policy: str = ""
    near_duplicate_of: str = ""
    accepted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentRejected(Event, frozen=True, kw_only=True, tag="gyre.ingest.rejected.v1"):
    subject: ClassVar[str] = "ingest.rejected"
    document_id: str
    reasons: tuple[Rejection, ...]
    submitted_at: dt.datetime
    pii_found: dict[str, int] = msgspec.field(default_factory=dict)
    duplicate_of: str = ""
    rejected_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentDeletionRequested(Event, frozen=True, kw_only=True, tag="gyre.index.delete.v1"):
    """Ask the index to drop every chunk of a document."""

    subject: ClassVar[str] = "index.delete"
    document_id: str
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)
    # The last version sent before this deletion: versions up to it are removed, a later one never is.
    # 0 when the publisher leaves it out: every version the registry knows when the deletion is handled.
    up_to_version: Annotated[int, msgspec.Meta(ge=0)] = 0
