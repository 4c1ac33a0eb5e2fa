"""Submitting, uploading, reading and deleting documents: registry record first, then the event."""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import msgspec
import nats.errors
from starlette.datastructures import UploadFile

from gyre_contracts import DocumentDeletionRequested, DocumentSubmitted, encode_body, new_id, utc_now
from gyre_contracts.limits import metadata_problem
from gyre_gateway.body_limit import BYTES_PER_DOCUMENT_CHAR
from gyre_gateway.documents.protocol import (
    DOCUMENT_ID_MAX_LENGTH,
    DOCUMENT_ID_PATTERN,
    UNKNOWN_CONTENT_TYPE,
    DocumentCreate,
    DocumentReceipt,
    DocumentStatusResponse,
    Reason,
    UploadReceipt,
)
from gyre_gateway.errors import ApiError, too_deeply_nested
from gyre_gateway.upstream import connected, publish
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry, with_new_version, with_tombstone

log = get_logger()

# A media type as RFC 6838 names it (``type/subtype``), parameters after a ``;``.
MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
DOCUMENT_ID = re.compile(DOCUMENT_ID_PATTERN)

# Extensions whose type ``mimetypes`` does not know on every system (it reads /etc/mime.types).
EXTENSION_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
}

# Room for the CloudEvents headers, which count towards the bus's max payload with the body.
HEADERS_ALLOWANCE_BYTES = 2048


def max_document_bytes(max_document_chars: int) -> int:
    """The most bytes a document's ``content`` may have: the most whose base64 fits a request.

    A request may be ``BYTES_PER_DOCUMENT_CHAR`` bytes per allowed character (body_limit.py);
    base64 turns 3 bytes into 4, so 3/4 of that (6 x GYRE_MAX_DOCUMENT_CHARS, 12 MB by default).
    """
    return BYTES_PER_DOCUMENT_CHAR * max_document_chars * 3 // 4


def normalise_content_type(content_type: str) -> str | None:
    """``Text/Markdown ; charset=UTF-8`` -> ``text/markdown; charset=UTF-8``; None if it is no media type.

    Parameters are kept (a charset helps ingest decode non-UTF-8 text); only the type is lowered.
    """
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if not MEDIA_TYPE.match(media_type):
        return None
    kept = [p.strip() for p in parameters.split(";") if p.strip()]
    return "; ".join([media_type, *kept])


def guess_content_type(filename: str) -> str:
    """The media type a file name suggests; unknown -> ``application/octet-stream`` (ingest sniffs it)."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix in EXTENSION_TYPES:
        return EXTENSION_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    return guessed or UNKNOWN_CONTENT_TYPE


def upload_content_type(declared: str | None, filename: str) -> str:
    """A part's own content type, unless it says nothing (absent or octet-stream): then the file name's."""
    normalised = normalise_content_type(declared) if declared else None
    if normalised is None or normalised.startswith(UNKNOWN_CONTENT_TYPE):
        return guess_content_type(filename)
    return normalised


def too_large(size: int, limit: int, unit: str, param: str, name: str = "document") -> ApiError:
    return ApiError(
        413,
        f"{name} too large: {size} {unit}, the limit is {limit} (set by GYRE_MAX_DOCUMENT_CHARS); "
        "split it into several documents",
        code="document_too_large",
        param=param,
    )


def check_submission(body: DocumentCreate, max_chars: int) -> str:
    """Raise the 4xx a client can fix; return the normalised content type.

    Any media type is accepted: the ingest service decides what it can read and rejects the rest
    with a reason. Limits: ``text`` up to GYRE_MAX_DOCUMENT_CHARS characters, ``content`` up to
    ``max_document_bytes`` decoded bytes.
    """
    if (body.text is None) == (body.content is None):
        raise ApiError(
            400,
            "send exactly one of `text` (the document as a string) or `content` (its bytes, base64)",
            code="invalid_value",
            param="text",
        )
    content_type = normalise_content_type(body.content_type)
    if content_type is None:
        raise ApiError(
            400,
            f"content_type {body.content_type!r} is not a media type; send one such as text/markdown, "
            f"application/pdf, or {UNKNOWN_CONTENT_TYPE} to let ingest detect it",
            code="invalid_value",
            param="content_type",
        )
    if body.text is not None:
        if not body.text.strip():
            raise ApiError(400, "text is empty", code="invalid_value", param="text")
        if len(body.text) > max_chars:
            raise too_large(len(body.text), max_chars, "characters", "text")
        return content_type
    assert body.content is not None
    try:
        size = len(base64.b64decode(body.content, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"content is not valid base64: {exc}", code="invalid_base64", param="content") from exc
    if size == 0:
        raise ApiError(400, "content is empty", code="invalid_value", param="content")
    limit = max_document_bytes(max_chars)
    if size > limit:
        raise too_large(size, limit, "bytes", "content")
    return content_type


def check_fits_bus(submission: DocumentSubmitted, max_payload: int) -> None:
    """413 for a document whose event the bus would refuse (nats-server ``max_payload``, 1 MiB by default)."""
    size = len(encode_body(submission)) + HEADERS_ALLOWANCE_BYTES
    if size > max_payload:
        raise ApiError(
            413,
            f"document {submission.document_id!r} too large for the event bus: its event would be about {size} "
            f"bytes, the bus takes at most {max_payload} per message (nats-server `max_payload`); split the "
            "document, or raise max_payload in the NATS server's configuration",
            code="document_too_large",
            param="content" if submission.content is not None else "text",
        )


def mark_pending(current: DocumentRecord | None, submission: DocumentSubmitted) -> DocumentRecord:
    """The record once a (re)submission is sent: the next version number is its own, status pending.

    The version is fixed here, when it is sent, so versions follow the order users send them in
    whatever order ingest finishes them; the previously indexed version stays searchable until the
    new one is indexed.
    """
    return with_new_version(
        current, tenant=submission.tenant, document_id=submission.document_id, title=submission.title,
        submitted_at=submission.submitted_at,
    )


async def register_and_publish(
    service: Service, submission: DocumentSubmitted, *, traceparent: str | None
) -> DocumentReceipt:
    """The registry record first (a status read right after the 202 must find it, and it numbers the
    version), then the event carrying that version."""
    registry = await DocumentRegistry.open(connected(service).bus)
    record = await registry.update(
        submission.tenant, submission.document_id, lambda current: mark_pending(current, submission)
    )
    assert record is not None
    submission = msgspec.structs.replace(submission, version=record.submissions)
    await publish(service, submission, event_id=submission.submission_id, traceparent=traceparent)
    log.info(
        "document_submitted",
        document_id=submission.document_id,
        submission_id=submission.submission_id,
        version=submission.version,
        content_type=submission.content_type,
        source=submission.source,
    )
    return DocumentReceipt(document_id=submission.document_id, status="pending")


async def submit_document(
    service: Service, tenant: str, body: DocumentCreate, *, traceparent: str | None = None
) -> DocumentReceipt:
    content_type = check_submission(body, service.settings.max_document_chars)
    submission = DocumentSubmitted(
        tenant=tenant,
        document_id=body.id or new_id(),
        text=body.text,
        content=body.content,
        content_type=content_type,
        title=body.title,
        metadata=body.metadata,
        source="api",
        submission_id=new_id(),
        submitted_at=utc_now(),
    )
    check_fits_bus(submission, connected(service).bus.nc.max_payload)
    return await register_and_publish(service, submission, traceparent=traceparent)


# ---------------------------------------------------------------- multipart upload


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


async def upload_documents(
    service: Service,
    tenant: str,
    files: Sequence[UploadFile],
    *,
    metadata: str | None,
    id_prefix: str | None,
    document_id: str | None,
    traceparent: str | None = None,
) -> UploadReceipt:
    """Every file checked before any is submitted, then each registered and published in order."""
    max_bytes = max_document_bytes(service.settings.max_document_chars)
    read = [await read_upload(f, max_bytes) for f in files]
    submissions = upload_submissions(
        tenant,
        read,
        metadata=parse_upload_metadata(metadata),
        id_prefix=id_prefix,
        document_id=document_id,
        max_bytes=max_bytes,
    )
    max_payload = connected(service).bus.nc.max_payload
    for submission in submissions:
        check_fits_bus(submission, max_payload)
    receipts = [await register_and_publish(service, s, traceparent=traceparent) for s in submissions]
    return UploadReceipt(documents=receipts)


# ---------------------------------------------------------------- status and delete


def status_response(record: DocumentRecord) -> DocumentStatusResponse:
    return DocumentStatusResponse(
        document_id=record.document_id,
        status=record.status,
        version=record.version,
        chunks=record.chunks,
        reasons=[Reason(code=r.code, message=r.message) for r in record.reasons],
        title=record.title,
        submitted_at=record.submitted_at,
        accepted_at=record.accepted_at,
        indexed_at=record.indexed_at,
        submit_to_indexed_ms=(
            (record.indexed_at - record.submitted_at).total_seconds() * 1000
            if record.status == "indexed" and record.indexed_at and record.submitted_at
            else None
        ),
        content_hash=record.content_hash,
        embedding_model=record.embedding_model,
    )


def not_found(document_id: str) -> ApiError:
    return ApiError(404, f"no document {document_id!r} (for this API key's tenant)", code="document_not_found")


async def document_status(service: Service, tenant: str, document_id: str) -> DocumentStatusResponse:
    record = await (await DocumentRegistry.open(connected(service).bus)).get(tenant, document_id)
    if record is None:
        raise not_found(document_id)
    return status_response(record)


async def ingest_stream_watermark(service: Service) -> int:
    """The ingest stream's last sequence: submissions stored up to it were sent before a deletion sent now.

    Only submissions that came without a version (other systems' events) need it; 0 if the bus
    cannot say, and then ingest records its own when it handles the deletion.
    """
    bus = connected(service).bus
    try:
        info = await bus.js.stream_info(bus.stream_name("GYRE_INGEST"))
    except (nats.errors.Error, TimeoutError) as exc:
        log.warning("ingest_watermark_unavailable", error=f"{type(exc).__name__}: {exc}")
        return 0
    return int(info.state.last_seq)


async def delete_document(
    service: Service, tenant: str, document_id: str, *, traceparent: str | None = None
) -> DocumentReceipt:
    """The tombstone first (every version sent so far is deleted, a later submission is a new version),
    then the event naming the last version it covers, so ingest and embed remove exactly those."""
    registry = await DocumentRegistry.open(connected(service).bus)
    watermark = await ingest_stream_watermark(service)

    def mark_deleted(current: DocumentRecord | None) -> DocumentRecord | None:
        if current is None:
            return None
        return with_tombstone(current, ingest_watermark=watermark)

    record = await registry.update(tenant, document_id, mark_deleted)
    if record is None:
        raise not_found(document_id)
    request = DocumentDeletionRequested(
        tenant=tenant, document_id=document_id, up_to_version=record.deleted_up_to_version
    )
    await publish(service, request, event_id=new_id(), traceparent=traceparent)
    log.info("document_deletion_requested", document_id=document_id, up_to_version=record.deleted_up_to_version)
    return DocumentReceipt(document_id=document_id, status="deleted")
