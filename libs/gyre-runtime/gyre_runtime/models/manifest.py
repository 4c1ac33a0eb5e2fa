"""The manifest written next to every built model (`manifest.json`).

The model build (`libs/gyre-modelbuild`) writes it; the runtimes read it to name the model
version they serve and to check that the files on disk are the files that were built.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

MANIFEST_NAME = "manifest.json"


class FileEntry(msgspec.Struct, frozen=True, kw_only=True):
    sha256: str
    size: int


class ModelManifest(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str
    kind: str  # "embedding" | "generation"
    source_package: str
    source_version: str
    quantisation: str
    file: str  # the main file, relative to the model folder
    sha256: str  # of the main file
    size: int  # of the main file
    files: dict[str, FileEntry]
    recipe_hash: str
    built_at: str
    digest: str = ""  # sha256 over every file's path + sha256: names the whole folder
    format: str = ""  # "onnx" | "onnxruntime-genai"
    dimension: int | None = None  # embedding models
    max_tokens: int | None = None  # embedding models: input tokens per text
    context_length: int | None = None  # generation models
    chat_template: str = "chatml"  # generation models: how turns become a prompt (generation.chat_template)
    instruction_tuned: bool = True  # generation models: False for a base model (continues text, ignores turns)
    license: str = ""
    tools: dict[str, str] = {}
    evaluation: dict[str, float] = {}

    @property
    def model_version(self) -> str:
        """`name:version:hash12`: what a service reports as the model it serves. The hash is the
        folder digest when there is one (a genai model's graph file alone does not change with
        its weights), else the main file's sha256."""
        return f"{self.name}:{self.version}:{(self.digest or self.sha256)[:12]}"


def folder_digest(files: dict[str, FileEntry]) -> str:
    lines = "".join(f"{rel}\t{entry.sha256}\n" for rel, entry in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


class ManifestError(Exception):
    pass


def load_manifest(model_dir: str | Path) -> ModelManifest:
    path = Path(model_dir) / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path} not found: build the models first (`just models`)") from None
    try:
        return msgspec.json.decode(data, type=ModelManifest)
    except msgspec.DecodeError as exc:
        raise ManifestError(f"{path} is not a valid model manifest: {exc}") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_manifest(model_dir: str | Path, *, check_hashes: bool = True) -> list[str]:
    """Problems found comparing the folder with its manifest; [] when everything matches.

    `check_hashes=False` only compares sizes (fast start-up check).
    """
    model_dir = Path(model_dir)
    try:
        manifest = load_manifest(model_dir)
    except ManifestError as exc:
        return [str(exc)]
    problems: list[str] = []
    if manifest.file not in manifest.files:
        problems.append(f"main file {manifest.file!r} is not listed in files")
    else:
        entry = manifest.files[manifest.file]
        if (entry.sha256, entry.size) != (manifest.sha256, manifest.size):
            problems.append(f"main file {manifest.file!r}: sha256/size differ from its files entry")
    if manifest.digest and folder_digest(manifest.files) != manifest.digest:
        problems.append("digest does not match the files listed")
    for rel, entry in sorted(manifest.files.items()):
        path = model_dir / rel
        if not path.is_file():
            problems.append(f"{rel}: missing")
            continue
        size = path.stat().st_size
        if size != entry.size:
            problems.append(f"{rel}: size {size} != {entry.size}")
            continue
        if check_hashes and sha256_file(path) != entry.sha256:
            problems.append(f"{rel}: sha256 differs from the manifest")
    return problems
