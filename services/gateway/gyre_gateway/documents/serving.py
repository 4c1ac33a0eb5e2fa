"""Submitting, reading and deleting documents: registry record first, then the event."""

from __future__ import annotations

import base64
import binascii

import msgspec

from gyre_contracts import DocumentDeletionRequested, DocumentSubmitted, new_id, utc_now
from gyre_gateway.documents.protocol import (
    SUPPORTED_CONTENT_TYPES,
    DocumentCreate,
    DocumentReceipt,
    DocumentStatusResponse,
    Reason,
)
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry

log = get_logger()

REGISTRY_BUCKET = "gyre_documents"


def normalise_content_type(content_type: str) -> str:
    """``Text/Plain; charset=utf-8`` -> ``text/plain``."""
    return content_type.split(";", 1)[0].strip().lower()


def check_submission(body: DocumentCreate, max_chars: int) -> str:
    """Raise the 4xx a client can fix; return the normalised content type."""
    if (body.text is None) == (body.content is None):
        raise ApiError(
            400,
            "send exactly one of `text` (the document as a string) or `content` (its bytes, base64)",
            code="invalid_value",
            param="text",
        )
    content_type = normalise_content_type(body.content_type)
    if content_type not in SUPPORTED_CONTENT_TYPES:
        raise ApiError(
            400,
            f"content_type {body.content_type!r} is not supported; send one of "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)} (convert other formats to text first)",
            code="unsupported_content_type",
            param="content_type",
        )
    if body.text is not None:
        if not body.text.strip():
            raise ApiError(400, "text is empty", code="invalid_value", param="text")
        size, param = len(body.text), "text"
    else:
        assert body.content is not None
        try:
            size = len(base64.b64decode(body.content, validate=True))
        except (binascii.Error, ValueError) as exc:
            raise ApiError(400, f"content is not valid base64: {exc}", code="invalid_base64", param="content") from exc
        if size == 0:
            raise ApiError(400, "content is empty", code="invalid_value", param="content")
        param = "content"
    if size > max_chars:
        raise ApiError(
            413,
            f"document too large: {size} characters, the limit is {max_chars} (GYRE_MAX_DOCUMENT_CHARS); "
            "split it into several documents",
            code="document_too_large",
            param=param,
        )
    return content_type


def mark_pending(
    current: DocumentRecord | None,
    *,
    tenant: str,
    document_id: str,
    body: DocumentCreate,
    submission: DocumentSubmitted,
) -> DocumentRecord:
    """The record after a (re)submission: pending, old version and chunks kept until the new one is indexed.

    ``submission_id`` is left alone: ingest sets it when it assigns the new version, and uses it
    to tell a redelivery (same id, keep the version) from a resubmission (new version).
    """
    if current is None:
        return DocumentRecord(
            document_id=document_id,
            tenant=tenant,
            status="pending",
            title=body.title,
            submitted_at=submission.submitted_at,
        )
    return msgspec.structs.replace(
        current,
        status="pending",
        title=body.title or current.title,
        reasons=[],
        submitted_at=submission.submitted_at,
    )


async def submit_document(
    service: Service, tenant: str, body: DocumentCreate, *, traceparent: str | None = None
) -> DocumentReceipt:
    content_type = check_submission(body, service.settings.max_document_chars)
    document_id = body.id or new_id()
    submission = DocumentSubmitted(
        tenant=tenant,
        document_id=document_id,
        text=body.text,
        content=body.content,
        content_type=content_type,
        title=body.title,
        metadata=body.metadata,
        source="api",
        submission_id=new_id(),
        submitted_at=utc_now(),
    )
    registry = DocumentRegistry(await connected(service).bus.kv(REGISTRY_BUCKET))
    # The record first: a status read right after the 202 must find the document.
    await registry.update(
        tenant,
        document_id,
        lambda current: mark_pending(current, tenant=tenant, document_id=document_id, body=body, submission=submission),
    )
    await publish(service, submission, event_id=submission.submission_id, traceparent=traceparent)
    log.info("document_submitted", document_id=document_id, submission_id=submission.submission_id)
    return DocumentReceipt(document_id=document_id, status="pending")


def status_response(record: DocumentRecord) -> DocumentStatusResponse:
    return DocumentStatusResponse(
        document_id=record.document_id,
        status=record.status,
        version=record.version,
        chunks=record.chunks,
        reasons=[Reason(code=r.code, message=r.message) for r in record.reasons],
        title=record.title,
        submitted_at=record.submitted_at,
        indexed_at=record.indexed_at,
    )


def not_found(document_id: str) -> ApiError:
    return ApiError(404, f"no document {document_id!r} (for this API key's tenant)", code="document_not_found")


async def document_status(service: Service, tenant: str, document_id: str) -> DocumentStatusResponse:
    record = await DocumentRegistry(await connected(service).bus.kv(REGISTRY_BUCKET)).get(tenant, document_id)
    if record is None:
        raise not_found(document_id)
    return status_response(record)


async def delete_document(
    service: Service, tenant: str, document_id: str, *, traceparent: str | None = None
) -> DocumentReceipt:
    registry = DocumentRegistry(await connected(service).bus.kv(REGISTRY_BUCKET))

    def mark_deleted(current: DocumentRecord | None) -> DocumentRecord | None:
        if current is None:
            return None
        return msgspec.structs.replace(current, status="deleted")

    record = await registry.update(tenant, document_id, mark_deleted)
    if record is None:
        raise not_found(document_id)
    request = DocumentDeletionRequested(tenant=tenant, document_id=document_id)
    await publish(service, request, event_id=new_id(), traceparent=traceparent)
    log.info("document_deletion_requested", document_id=document_id)
    return DocumentReceipt(document_id=document_id, status="deleted")
