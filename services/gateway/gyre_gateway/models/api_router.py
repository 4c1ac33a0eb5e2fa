"""HTTP route of the OpenAI-compatible models endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gyre_gateway.auth import QueryTenant
from gyre_gateway.errors import error_body
from gyre_gateway.models.protocol import ModelCard, ModelList
from gyre_gateway.models.serving import get_model, list_models
from gyre_gateway.upstream import service_of

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelList)
async def models(tenant: QueryTenant, request: Request) -> ModelList:
    """The embedding and generation models the running services serve."""
    return await list_models(service_of(request))


@router.get(
    "/models/{model:path}", response_model=ModelCard,
    responses={404: {"description": "No running service serves that model; the message names those that are.",
                     "content": {"application/json": {"example": error_body(
                         "unknown model 'gpt-4'; models served: all-minilm-l6-v2, smollm2-135m-instruct",
                         "invalid_request_error", param="model", code="model_not_found")}}}},
)
async def retrieve_model(model: str, tenant: QueryTenant, request: Request) -> ModelCard:
    """One model a running service serves (OpenAI's retrieve model), with its kind and version."""
    return await get_model(service_of(request), model)
