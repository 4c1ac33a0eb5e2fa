"""Request and response bodies of the documents endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DocumentStatus = Literal["pending", "indexed", "rejected", "deleted"]

# What a document id may be, in the JSON body and after ``id_prefix`` + file name in an upload.
DOCUMENT_ID_MAX_LENGTH = 256
DOCUMENT_ID_PATTERN = r"^[^\x00-\x1f\x7f]+$"

# The sender of bytes whose format it does not know; the ingest service sniffs such content.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


class DocumentCreate(BaseModel):
    """A document to ingest: ``text``, or ``content`` (base64) with its ``content_type``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=DOCUMENT_ID_MAX_LENGTH,
        pattern=DOCUMENT_ID_PATTERN,
        description="Your id for the document; resubmitting an id replaces that document. Default: a new id.",
    )
    text: str | None = Field(default=None, description="The document as text (exclusive with `content`).")
    content: str | None = Field(default=None, description="The document's bytes, base64 (exclusive with `text`).")
    content_type: str = Field(
        default="text/plain",
        max_length=255,
        description=(
            "The media type of `text` or `content`, e.g. `text/markdown`, `text/html`, `application/pdf` "
            f"(`{UNKNOWN_CONTENT_TYPE}` lets ingest sniff it). The ingest service decides what it can read: "
            "a format it cannot is rejected with a reason (see `GET /v1/documents/{id}`), not refused here."
        ),
    )
    title: str = Field(default="", max_length=1000)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free JSON, usable as a search filter.")


class DocumentReceipt(BaseModel):
    """What a submit or delete answers: the id and its status now."""

    document_id: str
    status: DocumentStatus


class UploadReceipt(BaseModel):
    """What a multipart upload answers: one receipt per file, in the order the files were sent."""

    documents: list[DocumentReceipt]


class Reason(BaseModel):
    code: str
    message: str


class DocumentStatusResponse(BaseModel):
    document_id: str
    status: DocumentStatus
    version: int
    chunks: int
    reasons: list[Reason]
    title: str
    submitted_at: dt.datetime | None
    accepted_at: dt.datetime | None = None
    indexed_at: dt.datetime | None
    submit_to_indexed_ms: float | None = Field(
        default=None, description="From submission to searchable, for the current version."
    )
    content_hash: str = ""
    embedding_model: str = ""
