"""HTTP routes of the documents endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import Tenant
from gyre_gateway.documents.protocol import DocumentCreate, DocumentReceipt, DocumentStatusResponse
from gyre_gateway.documents.serving import delete_document, document_status, submit_document
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.post("", status_code=202, response_model=DocumentReceipt)
async def create_document(body: DocumentCreate, tenant: Tenant, request: Request) -> DocumentReceipt:
    """Submit a document for ingestion; poll `GET /v1/documents/{id}` for its status."""
    return await submit_document(service_of(request), tenant, body, traceparent=traceparent_of(request))


@router.get("/{document_id:path}", response_model=DocumentStatusResponse)
async def get_document(document_id: str, tenant: Tenant, request: Request) -> DocumentStatusResponse:
    """Status of a document: pending, indexed, rejected (with reasons) or deleted."""
    return await document_status(service_of(request), tenant, document_id)


@router.delete("/{document_id:path}", status_code=202, response_model=DocumentReceipt)
async def remove_document(document_id: str, tenant: Tenant, request: Request) -> DocumentReceipt:
    """Delete a document and all its chunks from the index."""
    return await delete_document(service_of(request), tenant, document_id, traceparent=traceparent_of(request))
