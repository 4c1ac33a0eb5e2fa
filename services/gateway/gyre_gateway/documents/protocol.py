"""Request and response bodies of the documents endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gyre_contracts.limits import (
    CONTENT_TYPE_MAX_LENGTH,
    METADATA_LIMITS,
    TITLE_MAX_LENGTH,
    metadata_problem,
)

# What a document id may be, in the JSON body and after ``id_prefix`` + file name in an upload: the
# contracts' DocumentId, so an id accepted here is one every service decodes.
from gyre_contracts.limits import DOCUMENT_ID_MAX_LENGTH as DOCUMENT_ID_MAX_LENGTH
from gyre_contracts.limits import DOCUMENT_ID_PATTERN as DOCUMENT_ID_PATTERN

DocumentStatus = Literal["pending", "indexed", "rejected", "deleted"]


def checked_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` if it fits the contracts' limits (keys, size, depth, string lengths); else a 400 naming it."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise ValueError(problem)
    return metadata


Metadata = Annotated[dict[str, Any], AfterValidator(checked_metadata)]

# The sender of bytes whose format it does not know; the ingest service sniffs such content.
UNKNOWN_CONTENT_TYPE = "application/octet-stream"


class DocumentCreate(BaseModel):
    """A document to ingest: ``text``, or ``content`` (base64) with its ``content_type``."""

    # Python's re: the contracts' patterns use a lookahead the default (Rust) engine lacks.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

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
        max_length=CONTENT_TYPE_MAX_LENGTH,
        description=(
            "The media type of `text` or `content`, e.g. `text/markdown`, `text/html`, `application/pdf` "
            f"(`{UNKNOWN_CONTENT_TYPE}` lets ingest sniff it). The ingest service decides what it can read: "
            "a format it cannot is rejected with a reason (see `GET /v1/documents/{id}`), not refused here."
        ),
    )
    title: str = Field(default="", max_length=TITLE_MAX_LENGTH)
    metadata: Metadata = Field(
        default_factory=dict,
        description=(
            f"Free JSON, usable as a search filter; copied into every chunk, so kept small: {METADATA_LIMITS}."
        ),
    )


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
