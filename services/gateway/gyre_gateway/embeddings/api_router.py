"""HTTP route of the OpenAI-compatible embeddings endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import QueryCaller
from gyre_gateway.embeddings.protocol import EmbeddingList, EmbeddingRequest
from gyre_gateway.embeddings.serving import create_embeddings
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["embeddings"])


@router.post("/embeddings", response_model=EmbeddingList)
async def embeddings(body: EmbeddingRequest, caller: QueryCaller, request: Request) -> EmbeddingList:
    """OpenAI-compatible embeddings of one text or a list of texts.

    Limits: `GYRE_EMBEDDINGS_MAX_INPUTS` inputs and `GYRE_EMBEDDINGS_MAX_CHARS` characters per request
    (400), `GYRE_EMBEDDINGS_INPUTS_PER_MINUTE` inputs per key (429 with `Retry-After`), and 429 with
    `Retry-After` while the embed service has the tenant's queue full.
    """
    return await create_embeddings(
        service_of(request), caller, body, request.app.state.input_rate_limiter, traceparent=traceparent_of(request)
    )
