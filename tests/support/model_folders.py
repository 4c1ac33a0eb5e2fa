"""Small model folders with valid manifests: what the model hub's fast tests push, pull and promote."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import msgspec

from gyre_runtime.models.manifest import MANIFEST_NAME, FileEntry, ModelManifest, folder_digest


def write_model_folder(
    folder: Path, *, name: str = "tiny-generator", kind: str = "generation", version: str = "1",
    weights: bytes = b"weights of a tiny model",
) -> ModelManifest:
    """``folder`` with a few files (one in a subfolder, one larger than an Object Store chunk) and their manifest."""
    files = {
        "model.onnx": weights,
        "tokenizer.json": b'{"vocab": ["a", "b"]}',
        "extra/blob.bin": bytes(range(256)) * 4096,  # 1 MiB: several chunks
    }
    entries = {}
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        entries[rel] = FileEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    main = entries["model.onnx"]
    manifest = ModelManifest(
        name=name, version=version, kind=kind, source_package=f"{name}-source", source_version="0.1.0",
        quantisation="none", file="model.onnx", sha256=main.sha256, size=main.size, files=entries,
        recipe_hash="ab" * 32, built_at="2026-12-01T00:00:00+00:00", digest=folder_digest(entries), format="onnx",
        dimension=4 if kind == "embedding" else None, license="Apache-2.0", evaluation={"check": 0.99},
    )
    (folder / MANIFEST_NAME).write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    return manifest


def renamed_copy(source: Path, target: Path, name: str) -> Path:
    """A built model folder copied under another name: the same weights as another hub version (its id
    starts with the name), as a tuned or rebuilt model would arrive."""
    shutil.copytree(source, target)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    manifest["name"] = name
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))
    return target
