"""Submitting, uploading, reading and deleting documents: registry record first, then the event."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import nats.errors
from starlette.datastructures import UploadFile

from gyre_contracts import DocumentDeletionRequested, DocumentSubmitted, new_id, utc_now
from gyre_gateway.documents.protocol import (
    DocumentCreate,
    DocumentReceipt,
    DocumentStatusResponse,
    Reason,
    UploadReceipt,
)
from gyre_gateway.documents.upload import parse_upload_metadata, read_upload, upload_submissions
from gyre_gateway.documents.validation import check_fits_bus, check_submission, max_document_bytes
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry, with_new_version, with_tombstone

log = get_logger()


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
