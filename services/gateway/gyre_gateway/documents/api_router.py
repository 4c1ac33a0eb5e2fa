"""HTTP routes of the documents endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from gyre_gateway.auth import IngestTenant
from gyre_gateway.documents.protocol import (
    DOCUMENT_ID_MAX_LENGTH,
    DocumentCreate,
    DocumentReceipt,
    DocumentStatusResponse,
    UploadReceipt,
)
from gyre_gateway.documents.serving import delete_document, document_status, submit_document, upload_documents
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post("", status_code=202, response_model=DocumentReceipt)
async def create_document(body: DocumentCreate, tenant: IngestTenant, request: Request) -> DocumentReceipt:
    """Submit a document for ingestion; poll `GET /v1/documents/{id}` for its status."""
    return await submit_document(service_of(request), tenant, body, traceparent=traceparent_of(request))


@router.post("/upload", status_code=202, response_model=UploadReceipt)
async def upload_files(
    tenant: IngestTenant,
    request: Request,
    files: Annotated[
        list[UploadFile],
        File(description="One or more files; each becomes a document. Its part's content type is used, "
             "else the one its file name suggests, else `application/octet-stream` (ingest detects it)."),
    ],
    metadata: Annotated[
        str | None, Form(description='JSON object given to every file\'s document, e.g. `{"team": "docs"}`.')
    ] = None,
    id_prefix: Annotated[
        str | None, Form(description="Document id = id_prefix + file name (e.g. `handbook/`).")
    ] = None,
    id: Annotated[
        str | None,
        Form(max_length=DOCUMENT_ID_MAX_LENGTH, description="The document id, for an upload of exactly one file."),
    ] = None,
) -> UploadReceipt:
    """Upload files as `multipart/form-data`; poll `GET /v1/documents/{id}` for each one's status.

    Every file is checked (name, size, id) before any is submitted, so a 4xx submits nothing.
    """
    return await upload_documents(
        service_of(request),
        tenant,
        files,
        metadata=metadata,
        id_prefix=id_prefix,
        document_id=id,
        traceparent=traceparent_of(request),
    )


@router.get("/{document_id:path}", response_model=DocumentStatusResponse)
async def get_document(document_id: str, tenant: IngestTenant, request: Request) -> DocumentStatusResponse:
    """Status of a document: pending, indexed, rejected (with reasons) or deleted."""
    return await document_status(service_of(request), tenant, document_id)


@router.delete("/{document_id:path}", status_code=202, response_model=DocumentReceipt)
async def remove_document(document_id: str, tenant: IngestTenant, request: Request) -> DocumentReceipt:
    """Delete a document and all its chunks from the index."""
    return await delete_document(service_of(request), tenant, document_id, traceparent=traceparent_of(request))
