"""The Generator behaviour suite on the in-process onnxruntime-genai backend with the real SmolLM2."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from gyre_runtime.config import load_settings
from gyre_runtime.generation.onnx import OnnxGenaiBackend
from tests.integration.generation.behaviour import GeneratorBehaviour, generation_model_dir

pytestmark = pytest.mark.models


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def generator() -> AsyncIterator[OnnxGenaiBackend]:
    backend = OnnxGenaiBackend(generation_model_dir(), threads=load_settings({}).model_threads)
    yield backend
    await backend.close()


class TestOnnxGenaiBackend(GeneratorBehaviour):
    deterministic_with_seed = True  # onnxruntime-genai's random_seed fixes its sampler
    max_tokens_tolerance = 0  # counts the model's own tokens
