"""HTTP route of the OpenAI-compatible models endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import QueryTenant
from gyre_gateway.models.protocol import ModelList
from gyre_gateway.models.serving import list_models
from gyre_gateway.upstream import service_of

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelList)
async def models(tenant: QueryTenant, request: Request) -> ModelList:
    """The embedding and generation models the running services serve."""
    return await list_models(service_of(request))
