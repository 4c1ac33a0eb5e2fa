"""all-MiniLM-L6-v2 unquantised: the default embedder's export, served at fp32 (what int8 costs in retrieval).

A model-selection candidate: the same export and checks as the default (`embedding.build`), then
the fp32 graph becomes the model and the int8 one is dropped. Standard library only at import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import embedding
from .recipes import Recipe


def build(recipe: Recipe, out: Path, work: Path) -> dict[str, Any]:
    fields = embedding.build(recipe, out, work)
    (out / "model.onnx").unlink()
    (out / "model_fp32.onnx").rename(out / "model.onnx")
    fields["evaluation"] = {k: v for k, v in fields["evaluation"].items() if "int8" not in k}
    return fields
