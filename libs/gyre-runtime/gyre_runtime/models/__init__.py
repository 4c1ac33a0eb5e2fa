"""Model runtimes: the ONNX sentence embedder and the manifests of built models.

The heavy import (onnxruntime) happens when the embedder is first used, so importing this package
stays cheap for services that only read manifests. Text generation engines, the in-process
onnxruntime-genai one included, live in ``gyre_runtime.generation``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .manifest import FileEntry, ManifestError, ModelManifest, load_manifest, verify_manifest

if TYPE_CHECKING:
    from .embedder import OnnxEmbedder

__all__ = [
    "FileEntry",
    "ManifestError",
    "ModelManifest",
    "OnnxEmbedder",
    "load_manifest",
    "verify_manifest",
]

_LAZY = {
    "OnnxEmbedder": "embedder",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
