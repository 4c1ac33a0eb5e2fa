"""Models: what the model registry says the running services serve."""

from __future__ import annotations

from gyre_gateway.errors import ApiError
from gyre_gateway.models.protocol import ModelCard, ModelList
from gyre_gateway.upstream import connected
from gyre_runtime.service import Service
from gyre_runtime.state.models import ModelEntry, ModelRegistry


def model_card(entry: ModelEntry) -> ModelCard:
    return ModelCard(id=entry.id, created=int(entry.registered_at.timestamp()), kind=entry.kind, version=entry.version)


async def list_models(service: Service) -> ModelList:
    entries = await (await ModelRegistry.open(connected(service).bus)).list()
    return ModelList(data=[model_card(e) for e in entries])


def model_not_found(model: str, entries: list[ModelEntry]) -> ApiError:
    """The 404 for a model no running service serves: it names those that are served."""
    known = ", ".join(e.id for e in entries) or "none (no embed or generate service has registered one yet)"
    return ApiError(404, f"unknown model {model!r}; models served: {known}", code="model_not_found", param="model")


async def get_model(service: Service, model: str) -> ModelCard:
    registry = await ModelRegistry.open(connected(service).bus)
    entry = await registry.get(model)
    if entry is None:
        raise model_not_found(model, await registry.list())
    return model_card(entry)
