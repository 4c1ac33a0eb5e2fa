"""`python -m gyre_modelbuild --model-dir DIR [--cache-dir DIR] [--only NAME | --candidates] [--check]`.

For each recipe: up to date in the model folder -> nothing; a valid build in the cache -> copied
in; otherwise built (in the build venv: torch, optimum, onnxruntime-genai builder) into the
cache first, then copied in. `--check` never builds: exit 3 when something would need building
(this runs with plain python3, before the build venv exists).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path

from .common import check_folder, folder_size, human_size, log, replace_folder, write_manifest
from .recipes import Recipe, by_name

NEEDS_BUILD = 3
TOOLS = ("torch", "transformers", "tokenizers", "optimum", "optimum-onnx", "onnx", "onnxruntime", "onnxruntime-genai")


def default_cache_dir() -> Path:
    env = os.environ.get("GYRE_MODEL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "gyre" / "models"


def _tool_versions() -> dict[str, str]:
    versions = {}
    for name in TOOLS:
        try:
            versions[name] = dist_version(name)
        except PackageNotFoundError:
            pass
    return versions


def _build(recipe: Recipe, recipe_hash: str, staging: Path) -> None:
    staging.mkdir(parents=True)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"gyre-build-{recipe.name}-") as work:
        fields = recipe.builder()(recipe, staging, Path(work))
    fields.update(
        name=recipe.name,
        version=recipe.version,
        kind=recipe.kind,
        source_package=recipe.source_package,
        quantisation=recipe.quantisation,
        recipe_hash=recipe_hash,
        tools=_tool_versions(),
    )
    write_manifest(staging, fields)
    problem = check_folder(staging, recipe_hash)
    if problem:
        raise RuntimeError(f"fresh build of {recipe.name} does not verify: {problem}")
    log(f"{recipe.name}: built in {time.monotonic() - t0:.0f}s ({human_size(folder_size(staging))})")


def _build_in_place(recipe: Recipe, recipe_hash: str, folder: Path) -> None:
    """Builds into a staging folder beside ``folder``, moved there only once complete and verified."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.building-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _build(recipe, recipe_hash, staging)
        replace_folder(staging, folder, move=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def ensure(recipe: Recipe, model_dir: Path, cache_dir: Path | None, *, check_only: bool) -> str:
    h = recipe.hash()
    dest = model_dir / recipe.name
    if check_folder(dest, h) is None:
        log(f"{recipe.name}: up to date ({dest}, recipe {h[:12]})")
        return "up-to-date"
    entry = cache_dir / f"{recipe.name}-{h[:16]}" if cache_dir else None
    if entry is not None and check_folder(entry, h) is None:
        replace_folder(entry, dest)
        log(f"{recipe.name}: restored from cache {entry} -> {dest}")
        return "restored"
    if check_only:
        why = check_folder(dest, h)
        log(f"{recipe.name}: needs a build ({dest}: {why}; no valid cache entry)")
        return "needs-build"

    log(f"{recipe.name}: building (recipe {h[:12]})")
    if entry is not None and cache_dir is not None:
        _build_in_place(recipe, h, entry)
        for old in cache_dir.glob(f"{recipe.name}-*"):  # older builds of this model
            if old != entry and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        replace_folder(entry, dest)
    else:
        _build_in_place(recipe, h, dest)
    log(f"{recipe.name}: ready in {dest}")
    return "built"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gyre_modelbuild", description=__doc__.split("\n\n")[1])
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--cache-dir", type=Path, default=None, help="default: $GYRE_MODEL_CACHE or ~/.cache/gyre/models")
    ap.add_argument("--no-cache", action="store_true", help="build straight into the model dir")
    ap.add_argument("--only", action="append", metavar="NAME", help="build only this model (repeatable)")
    ap.add_argument("--candidates", action="store_true", help="build the candidate models instead of the defaults")
    ap.add_argument("--check", action="store_true", help=f"never build; exit {NEEDS_BUILD} if a build is needed")
    args = ap.parse_args(argv)

    model_dir = args.model_dir.resolve()
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir()).expanduser().resolve()
    t0 = time.monotonic()
    selected = by_name(args.only, candidates=args.candidates)
    results = {r.name: ensure(r, model_dir, cache_dir, check_only=args.check) for r in selected}
    if "needs-build" in results.values():
        return NEEDS_BUILD
    log(
        f"models ready in {model_dir} ({time.monotonic() - t0:.1f}s): "
        + ", ".join(f"{k} {v}" for k, v in results.items())
    )
    return 0
