"""The default models built by `just models`, for the tests that need them (marked ``models``).

A missing model is a failure with the command that builds it, never a skip: a run without the
models must not pass silently. `just test-fast` deselects these tests and points GYRE_MODEL_DIR at
an empty folder, so a test that needs a model without saying so fails there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
EMBEDDER = "all-minilm-l6-v2"
GENERATOR = "smollm2-135m-instruct"


def model_store() -> Path:
    """The model store (GYRE_MODEL_DIR, relative to the repository, else `data/models`), as `just models` builds it."""
    root = Path(os.environ.get("GYRE_MODEL_DIR", REPO / "data" / "models"))
    return root if root.is_absolute() else REPO / root


def built_models(*names: str) -> Path:
    """The model store, after checking that each of ``names`` is built in it (default: both default models)."""
    root = model_store()
    missing = [name for name in names or (EMBEDDER, GENERATOR) if not (root / name / "manifest.json").is_file()]
    if missing:
        pytest.fail(f"models missing in {root}: {', '.join(missing)}; run `just models` (or set GYRE_MODEL_DIR)",
                    pytrace=False)
    return root


def embedder_tokenizer_path() -> Path:
    """The embedding model's tokenizer.json: what ingest counts chunk sizes with."""
    return built_models(EMBEDDER) / EMBEDDER / "tokenizer.json"


def embedder_tokenizer() -> Tokenizer:
    """That tokenizer as ingest uses it: whole texts, no truncation or padding."""
    tokenizer = Tokenizer.from_file(str(embedder_tokenizer_path()))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer
