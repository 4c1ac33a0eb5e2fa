"""What `gyre models compare` compares: built model folders, or an OpenAI-compatible endpoint.

A candidate is either

- the name of a model folder in the model store (``smollm2-135m-instruct-int8``): its manifest says
  whether it is an embedder or a generator and gives the facts the report quotes (licence,
  quantisation, size on disk, context length or dimension, source package), or
- ``openai:MODEL@BASE_URL`` (``openai:llama3.1@http://gpu-box:8000/v1``): a generator served by any
  OpenAI-compatible server, how a user brings a larger model. Its API key, if it needs one, comes
  from ``GYRE_OPENAI_API_KEY``. Nothing is known about it but what it answers.

Each candidate runs in a private stack with the default of the other role, so a row differs from
another only by the candidate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gyre_runtime.models.manifest import ManifestError, load_manifest

Role = Literal["embedder", "generator"]
ROLE_OF_KIND: dict[str, Role] = {"embedding": "embedder", "generation": "generator"}


class CandidateError(ValueError):
    """A candidate that cannot be compared (the message says why and what exists)."""


@dataclass(frozen=True)
class Candidate:
    label: str  # as the user named it: the report's row
    role: Role
    env: dict[str, str]  # what the private stack's services run with to serve it
    local: bool  # runs on this machine (privacy: nothing leaves it)
    facts: dict[str, str] = field(default_factory=dict)  # from the manifest: licence, quantisation, ...
    disk_bytes: int | None = None


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def parse_candidate(spec: str, model_root: Path) -> Candidate:
    """``spec`` as a Candidate; CandidateError when no such model is built or the spec is malformed."""
    if spec.startswith("openai:"):
        return _openai_candidate(spec)
    folder = model_root / spec
    try:
        manifest = load_manifest(folder)
    except ManifestError as exc:
        built = sorted(p.parent.name for p in model_root.glob("*/manifest.json"))
        raise CandidateError(
            f"no built model {spec!r} in {model_root} ({exc}); built: {', '.join(built) or 'none'}; "
            "or name an endpoint as openai:MODEL@BASE_URL"
        ) from None
    role = ROLE_OF_KIND.get(manifest.kind)
    if role is None:
        raise CandidateError(f"{spec}: manifest kind {manifest.kind!r} is neither embedding nor generation")
    facts = {
        "version": manifest.model_version,
        "licence": manifest.license or "not recorded",
        "quantisation": manifest.quantisation,
        "source package": f"{manifest.source_package}=={manifest.source_version}",
        "format": manifest.format or "onnx",
    }
    if manifest.context_length:
        facts["context length"] = f"{manifest.context_length} tokens"
    if manifest.dimension:
        facts["dimension"] = str(manifest.dimension)
    if manifest.max_tokens:
        facts["input tokens"] = str(manifest.max_tokens)
    variable = "GYRE_GENERATION_MODEL" if role == "generator" else "GYRE_EMBEDDING_MODEL"
    env = {variable: spec}
    if role == "generator":
        env["GYRE_GENERATION_BACKEND"] = "onnx"
    return Candidate(label=spec, role=role, env=env, local=True, facts=facts, disk_bytes=folder_bytes(folder))


def _openai_candidate(spec: str) -> Candidate:
    body = spec.removeprefix("openai:")
    model, sep, base_url = body.partition("@")
    if not sep or not model or not base_url.startswith(("http://", "https://")):
        raise CandidateError(f"{spec!r}: an endpoint is openai:MODEL@BASE_URL, e.g. openai:llama3.1@http://host:8000/v1")
    env = {
        "GYRE_GENERATION_BACKEND": "openai",
        "GYRE_OPENAI_BASE_URL": base_url,
        "GYRE_OPENAI_MODEL": model,
        "GYRE_GENERATION_MODEL": model,
    }
    if os.environ.get("GYRE_OPENAI_API_KEY"):
        env["GYRE_OPENAI_API_KEY"] = os.environ["GYRE_OPENAI_API_KEY"]
    facts = {"format": "OpenAI-compatible API", "served at": base_url, "licence": "the provider's terms"}
    return Candidate(label=spec, role="generator", env=env, local=False, facts=facts)
