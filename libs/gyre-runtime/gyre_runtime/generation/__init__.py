"""Text generation: the Generator port, its backends, and the one place that picks a backend."""

from __future__ import annotations

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


def open_generator(settings: Settings) -> Generator:
    """The backend named by ``GYRE_GENERATION_BACKEND``: onnx (in-process), triton or openai."""
    backend = settings.generation_backend
    if backend == "onnx":
        from gyre_runtime.generation.onnx import OnnxGenaiBackend

        # As many interleaved generations as the generate consumer hands over at once.
        return OnnxGenaiBackend(
            settings.model_path / settings.generation_model, threads=settings.model_threads, max_active=8
        )
    if backend == "triton":
        from gyre_runtime.generation.triton import TritonBackend

        return TritonBackend.from_settings(settings)
    if backend == "openai":
        from gyre_runtime.generation.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend.from_settings(settings)
    raise ValueError(f"unknown GYRE_GENERATION_BACKEND {backend!r}: expected onnx, triton or openai")
