"""Model runtimes: ONNX sentence embedder and onnxruntime-genai text generator.

Heavy imports (onnxruntime, onnxruntime_genai) happen when a class is first used, so importing
this package stays cheap for services that need only one of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .manifest import FileEntry, ManifestError, ModelManifest, load_manifest, verify_manifest

if TYPE_CHECKING:
    from .embedder import OnnxEmbedder
    from .generator import GenerationParams, GenerationStream, OnnxGenaiGenerator

__all__ = [
    "FileEntry",
    "GenerationParams",
    "GenerationStream",
    "ManifestError",
    "ModelManifest",
    "OnnxEmbedder",
    "OnnxGenaiGenerator",
    "load_manifest",
    "verify_manifest",
]

_LAZY = {
    "OnnxEmbedder": "embedder",
    "GenerationParams": "generator",
    "GenerationStream": "generator",
    "OnnxGenaiGenerator": "generator",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)
