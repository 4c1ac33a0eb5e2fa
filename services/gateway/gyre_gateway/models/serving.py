"""Models: what the model registry says the running services serve."""

from __future__ import annotations

from gyre_gateway.models.protocol import ModelCard, ModelList
from gyre_gateway.upstream import connected
from gyre_runtime.service import Service
from gyre_runtime.state.models import ModelEntry, ModelRegistry


def model_card(entry: ModelEntry) -> ModelCard:
    return ModelCard(id=entry.id, created=int(entry.registered_at.timestamp()), kind=entry.kind, version=entry.version)


async def list_models(service: Service) -> ModelList:
    entries = await (await ModelRegistry.open(connected(service).bus)).list()
    return ModelList(data=[model_card(e) for e in entries])
