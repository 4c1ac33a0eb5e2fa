"""HTTP route of the OpenAI-compatible embeddings endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import QueryTenant
from gyre_gateway.embeddings.protocol import EmbeddingList, EmbeddingRequest
from gyre_gateway.embeddings.serving import create_embeddings
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings", response_model=EmbeddingList)
async def embeddings(body: EmbeddingRequest, tenant: QueryTenant, request: Request) -> EmbeddingList:
    """OpenAI-compatible embeddings of one text or a list of texts."""
    return await create_embeddings(service_of(request), tenant, body, traceparent=traceparent_of(request))
