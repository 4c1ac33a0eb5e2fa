"""Request and response bodies of the documents endpoints."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SUPPORTED_CONTENT_TYPES = ("text/plain", "text/markdown")

DocumentStatus = Literal["pending", "indexed", "rejected", "deleted"]


class DocumentCreate(BaseModel):
    """A document to ingest: ``text``, or ``content`` (base64) with its ``content_type``."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="Your id for the document; resubmitting an id replaces that document. Default: a new id.",
    )
    text: str | None = Field(default=None, description="The document as text (exclusive with `content`).")
    content: str | None = Field(default=None, description="The document's bytes, base64 (exclusive with `text`).")
    content_type: str = Field(default="text/plain", description="One of: " + ", ".join(SUPPORTED_CONTENT_TYPES))
    title: str = Field(default="", max_length=1000)
    metadata: dict[str, Any] = Field(default_factory=dict, description="Free JSON, usable as a search filter.")


class DocumentReceipt(BaseModel):
    """What a submit or delete answers: the id and its status now."""

    document_id: str
    status: DocumentStatus


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
    indexed_at: dt.datetime | None
