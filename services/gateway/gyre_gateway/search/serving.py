"""Search: a retrieve request/reply to the embed service, always within the caller's tenant."""

from __future__ import annotations

from gyre_contracts import RetrieveRequest, RetrieveResult, new_id
from gyre_gateway.errors import ApiError
from gyre_gateway.search.protocol import SearchHit, SearchRequest, SearchResponse
from gyre_gateway.upstream import request_reply, upstream_failure
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service

log = get_logger()


def retrieve_request(tenant: str, body: SearchRequest, request_id: str) -> RetrieveRequest:
    if not body.query.strip():
        raise ApiError(400, "query is empty", code="invalid_value", param="query")
    return RetrieveRequest(
        tenant=tenant, query=body.query, top_k=body.top_k, filter=dict(body.filter), request_id=request_id,
        mode=body.mode,
    )


def search_response(result: RetrieveResult) -> SearchResponse:
    return SearchResponse(
        hits=[
            SearchHit(
                document_id=h.document_id,
                chunk_id=h.chunk_id,
                score=h.score,
                text=h.text,
                title=h.title,
                metadata=dict(h.metadata),
                heading_path=list(h.heading_path),
                page=h.page,
            )
            for h in result.hits
        ],
        retrieval_ms=result.retrieval_ms,
    )


async def search(
    service: Service, tenant: str, body: SearchRequest, *, traceparent: str | None = None
) -> SearchResponse:
    request_id = new_id()
    result = await request_reply(
        service,
        retrieve_request(tenant, body, request_id),
        RetrieveResult,
        unavailable="embed service unavailable: no replica answers retrieval requests; start `gyre-embed`",
        traceparent=traceparent,
    )
    if result.error:
        raise upstream_failure(result.error, "embed")
    log.info("search_done", request_id=request_id, hits=len(result.hits), retrieval_ms=result.retrieval_ms)
    return search_response(result)
