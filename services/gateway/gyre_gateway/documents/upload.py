"""A multipart upload read and checked: one DocumentSubmitted per file, or the 4xx for the first bad file."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from starlette.datastructures import UploadFile

from gyre_contracts import DocumentSubmitted, new_id, utc_now
from gyre_contracts.limits import metadata_problem
from gyre_gateway.documents.protocol import DOCUMENT_ID_MAX_LENGTH, DOCUMENT_ID_PATTERN
from gyre_gateway.documents.validation import too_large, upload_content_type
from gyre_gateway.errors import ApiError, too_deeply_nested

DOCUMENT_ID = re.compile(DOCUMENT_ID_PATTERN)


@dataclass(frozen=True)
class UploadedFile:
    """One ``files`` part of an upload, read: its file name, declared content type and bytes."""

    filename: str
    content_type: str | None
    data: bytes


def parse_upload_metadata(raw: str | None) -> dict[str, Any]:
    """The ``metadata`` form field: a JSON object (absent or blank -> {})."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"metadata is not valid JSON: {exc}", code="invalid_json", param="metadata") from exc
    except RecursionError as exc:
        raise too_deeply_nested("metadata") from exc
    if not isinstance(value, dict):
        raise ApiError(
            400, 'metadata must be a JSON object, e.g. {"team": "docs"}', code="invalid_value", param="metadata"
        )
    return upload_metadata(None, value)


def upload_metadata(filename: str | None, metadata: dict[str, Any]) -> dict[str, Any]:
    """A file's metadata (``filename`` added), or the 400 naming the limit it breaks (gyre_contracts.limits)."""
    merged = metadata if filename is None else {"filename": filename, **metadata}
    problem = metadata_problem(merged)
    if problem is not None:
        raise ApiError(400, f"metadata {problem}", code="invalid_value", param="metadata")
    return merged


def upload_document_id(filename: str, id_prefix: str | None, override: str | None) -> str:
    """``id`` if given, else ``id_prefix`` + the file name; 400 for what is no valid document id."""
    document_id = override if override else (id_prefix or "") + filename.lstrip("/")
    param = "id" if override else "files"
    if not document_id or not DOCUMENT_ID.match(document_id):
        raise ApiError(
            400,
            f"document id {document_id!r} (from {'`id`' if override else 'id_prefix + file name'}) is empty "
            "or holds control characters",
            code="invalid_value",
            param=param,
        )
    if len(document_id) > DOCUMENT_ID_MAX_LENGTH:
        raise ApiError(
            400,
            f"document id {document_id[:40]!r}... is {len(document_id)} characters, the limit is "
            f"{DOCUMENT_ID_MAX_LENGTH}; use a shorter file name or id_prefix",
            code="invalid_value",
            param=param,
        )
    return document_id


def upload_submissions(
    tenant: str,
    files: list[UploadedFile],
    *,
    metadata: dict[str, Any],
    id_prefix: str | None,
    document_id: str | None,
    max_bytes: int,
) -> list[DocumentSubmitted]:
    """One DocumentSubmitted per file, or the 4xx for the first file a client must fix (then none is sent)."""
    if not files:
        raise ApiError(400, "send at least one file in a `files` part", code="invalid_value", param="files")
    if document_id and len(files) > 1:
        raise ApiError(
            400,
            f"`id` names one document but {len(files)} files were sent; use id_prefix for several",
            code="invalid_value",
            param="id",
        )
    submissions: list[DocumentSubmitted] = []
    seen: set[str] = set()
    submitted_at = utc_now()
    for upload in files:
        if not upload.filename:
            raise ApiError(400, "every `files` part needs a file name", code="invalid_value", param="files")
        this_id = upload_document_id(upload.filename, id_prefix, document_id)
        if this_id in seen:
            raise ApiError(
                400, f"two files map to the document id {this_id!r}", code="invalid_value", param="files"
            )
        seen.add(this_id)
        if not upload.data:
            raise ApiError(400, f"file {upload.filename!r} is empty", code="invalid_value", param="files")
        if len(upload.data) > max_bytes:
            raise too_large(len(upload.data), max_bytes, "bytes", "files", name=f"file {upload.filename!r}")
        submissions.append(
            DocumentSubmitted(
                tenant=tenant,
                document_id=this_id,
                content=base64.b64encode(upload.data).decode("ascii"),
                content_type=upload_content_type(upload.content_type, upload.filename),
                title=PurePosixPath(upload.filename).stem,
                metadata=upload_metadata(upload.filename, metadata),
                source="upload",
                submission_id=new_id(),
                submitted_at=submitted_at,
            )
        )
    return submissions


async def read_upload(upload: UploadFile, max_bytes: int) -> UploadedFile:
    """A part's bytes, reading at most one byte past the limit (the check says how large it is then)."""
    data = await upload.read(max_bytes + 1)
    return UploadedFile(filename=upload.filename or "", content_type=upload.content_type, data=data)
