"""HTTP route of the search endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import QueryTenant
from gyre_gateway.search.protocol import SearchRequest, SearchResponse
from gyre_gateway.search.serving import search
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["search"])


@router.post("/search", response_model=SearchResponse)
async def search_chunks(body: SearchRequest, tenant: QueryTenant, request: Request) -> SearchResponse:
    """The `top_k` chunks of this tenant's documents closest to `query`, optionally filtered by metadata."""
    return await search(service_of(request), tenant, body, traceparent=traceparent_of(request))
