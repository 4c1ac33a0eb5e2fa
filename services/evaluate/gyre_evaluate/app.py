"""Evaluate service wiring: the EvaluationRequested consumer, the live pipeline client, the stores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from gyre_evaluate.handlers import Embed, EvaluateHandler
from gyre_evaluate.pipeline import LivePipeline
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.evaluations import EvaluationStore, GoldenSetStore
from gyre_runtime.state.prompts import PromptRegistry

log = get_logger()


def local_embedder(settings: Settings) -> Embed | None:
    """The embedding model for the embedding-similarity metrics, when this machine has it (else they are left out)."""
    path = settings.model_path / settings.embedding_model
    if not (path / "manifest.json").exists():
        log.warning("embedding_metrics_off", reason=f"no embedding model in {path}")
        return None
    from gyre_runtime.models.embedder import OnnxEmbedder

    embedder = OnnxEmbedder(path, threads=1)

    def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        vectors = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: npt.NDArray[np.float32] = vectors / np.maximum(norms, 1e-12)
        return normalised

    return embed


def create_app(settings: Settings) -> Any:
    service = Service("evaluate", settings)

    @service.on_start
    async def wire(svc: Service) -> None:
        bus = svc.bus
        handler = EvaluateHandler(
            pipeline=LivePipeline(svc.publisher, timeout_s=settings.evaluation_item_timeout_s),
            sets=await GoldenSetStore.open(bus),
            runs=await EvaluationStore.open(bus),
            prompts=await PromptRegistry.open(bus),
            publisher=svc.publisher,
            prompt_name=settings.prompt_name,
            default_top_k=settings.retrieval_top_k,
            default_max_tokens=settings.max_new_tokens,
            embed=local_embedder(settings),
            concurrency=settings.evaluation_concurrency,
        )
        svc.consume("evaluate", handler)

    return service.asgi()


def main() -> None:
    run_service("evaluate", create_app)
