"""Generator backend: onnxruntime-genai in this process (CUDA when onnxruntime-genai-cuda and a GPU are there)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gyre_runtime.generation.base import ChatTurn, GenerationParams, GenerationStream
from gyre_runtime.models.generator import GenerationParams as OgParams
from gyre_runtime.models.generator import OnnxGenaiGenerator


class OnnxGenaiBackend:
    def __init__(self, model_dir: Path, *, threads: int = 0, max_active: int = 4) -> None:
        self.model = OnnxGenaiGenerator(model_dir, threads=threads, max_active=max_active)

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def context_length(self) -> int:
        return self.model.context_length

    def count_tokens(self, text: str) -> int:
        return self.model.count_tokens(text)

    def format_chat(self, messages: Sequence[ChatTurn]) -> str:
        return self.model.format_chat(list(messages))

    def stream(self, messages: Sequence[ChatTurn], params: GenerationParams) -> GenerationStream:
        og_params = OgParams(
            max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            seed=params.seed, stop=params.stop,
        )
        return self.model.stream(self.format_chat(messages), og_params)

    async def close(self) -> None:
        self.model.close()
