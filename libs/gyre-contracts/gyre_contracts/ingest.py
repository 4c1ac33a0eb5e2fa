"""Document ingestion events: submitted, accepted, rejected, deletion requested."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar

import msgspec

from gyre_contracts.base import Event, Model, utc_now
from gyre_contracts.limits import (
    DOCUMENT_ID_MAX_LENGTH,
    ContentType,
    Count,
    DocumentId,
    Metadata,
    Name,
    OptionalIdentifier,
    Title,
    check_metadata,
)


class DocumentSubmitted(Event, frozen=True, kw_only=True, tag="gyre.ingest.submitted.v1"):
    """A document to ingest. Exactly one of ``text`` or ``content`` (base64) is set."""

    subject: ClassVar[str] = "ingest.submitted"
    document_id: DocumentId
    text: str | None = None
    content: str | None = None
    content_type: ContentType = "text/plain"
    title: Title = ""
    metadata: Metadata = msgspec.field(default_factory=dict)
    source: Name = "api"
    submission_id: OptionalIdentifier = ""
    submitted_at: dt.datetime = msgspec.field(default_factory=utc_now)
    # The version this submission becomes, fixed when it is sent (the gateway's compare-and-set on the
    # document's registry record), so versions follow the order of sending; 0 when the publisher leaves
    # it out: ingest assigns one when it first sees the submission.
    version: Annotated[int, msgspec.Meta(ge=0)] = 0

    def __post_init__(self) -> None:
        check_metadata(self.metadata)


class Rejection(Model, frozen=True, kw_only=True):
    """One reason a document was rejected: a stable code and a human explanation."""

    code: Name
    message: str


class DocumentAccepted(Event, frozen=True, kw_only=True, tag="gyre.ingest.accepted.v1"):
    subject: ClassVar[str] = "ingest.accepted"
    document_id: DocumentId
    version: Count
    content_hash: Name
    chunk_count: Count
    characters: Count
    submitted_at: dt.datetime
    content_type: ContentType = ""
    pii_found: dict[Name, Count] = msgspec.field(default_factory=dict)
    pii_policy: Name = ""
    near_duplicate_of: Annotated[str, msgspec.Meta(max_length=DOCUMENT_ID_MAX_LENGTH)] = ""
    accepted_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentRejected(Event, frozen=True, kw_only=True, tag="gyre.ingest.rejected.v1"):
    subject: ClassVar[str] = "ingest.rejected"
    document_id: DocumentId
    reasons: tuple[Rejection, ...]
    submitted_at: dt.datetime
    pii_found: dict[Name, Count] = msgspec.field(default_factory=dict)
    duplicate_of: Annotated[str, msgspec.Meta(max_length=DOCUMENT_ID_MAX_LENGTH)] = ""
    rejected_at: dt.datetime = msgspec.field(default_factory=utc_now)


class DocumentDeletionRequested(Event, frozen=True, kw_only=True, tag="gyre.index.delete.v1"):
    """Ask the index to drop every chunk of a document."""

    subject: ClassVar[str] = "index.delete"
    document_id: DocumentId
    requested_at: dt.datetime = msgspec.field(default_factory=utc_now)
    # The last version sent before this deletion: versions up to it are removed, a later one never is.
    # 0 when the publisher leaves it out: every version the registry knows when the deletion is handled.
    up_to_version: Annotated[int, msgspec.Meta(ge=0)] = 0
