"""Text generation: the Generator port, its backends, and the one place that picks a backend."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gyre_runtime.generation.base import (
    ChatTurn,
    GenerationError,
    GenerationStream,
    Generator,
)

if TYPE_CHECKING:
    from gyre_runtime.config import Settings

__all__ = ["ChatTurn", "GenerationError", "GenerationStream", "Generator", "open_generator"]


def open_generator(settings: Settings, folder: Path | None = None) -> Generator:
    """The backend named by ``GYRE_GENERATION_BACKEND``: onnx (in-process), triton or openai.

    ``folder``: the in-process model to load (a hub version made local); default the folder
    ``GYRE_GENERATION_MODEL`` names in the model store."""
    backend = settings.generation_backend
    if backend == "onnx":
        from gyre_runtime.generation.onnx import OnnxGenaiBackend

        # As many generations at once as the generate consumer hands over.
        return OnnxGenaiBackend(
            folder or settings.model_path / settings.generation_model, threads=settings.model_threads, max_active=8
        )
    if backend == "triton":
        from gyre_runtime.generation.triton import TritonBackend

        return TritonBackend.from_settings(settings)
    if backend == "openai":
        from gyre_runtime.generation.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend.from_settings(settings)
    raise ValueError(f"unknown GYRE_GENERATION_BACKEND {backend!r}: expected onnx, triton or openai")
