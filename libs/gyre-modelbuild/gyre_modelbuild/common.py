"""Standard-library-only helpers: hashing, manifests, progress lines, folder copies.

This module must import with plain `python3` (no torch, no onnx): build.sh uses it to decide
whether anything needs building before it creates the build venv at all.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path

MANIFEST_NAME = "manifest.json"
PACKAGE_DIR = Path(__file__).resolve().parent
BUILD_LIB_DIR = PACKAGE_DIR.parent  # libs/gyre-modelbuild
REQUIREMENT_FILES = ("requirements-build.txt", "requirements-build-nodeps.txt")
CANDIDATE_REQUIREMENT_FILES = ("requirements-build-candidates.txt",)  # weights only candidates need

_T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[models {time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def requirement_pins(files: tuple[str, ...] = REQUIREMENT_FILES) -> list[str]:
    """The build environment's pins, comments and blank lines dropped (they are in the hash)."""
    pins: list[str] = []
    for name in files:
        path = BUILD_LIB_DIR / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                pins.append(f"{name}:{line}")
    return pins


def file_entries(folder: Path) -> dict[str, dict[str, object]]:
    entries: dict[str, dict[str, object]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST_NAME:
            rel = path.relative_to(folder).as_posix()
            entries[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return entries


def folder_digest(files: dict[str, dict[str, object]]) -> str:
    """sha256 over every file's path and sha256: names the whole model folder."""
    lines = "".join(f"{rel}\t{entry['sha256']}\n" for rel, entry in sorted(files.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def write_manifest(folder: Path, fields: dict[str, object]) -> dict[str, object]:
    """Hash every file in `folder` and write manifest.json; `fields` must name `file`."""
    files = file_entries(folder)
    main = str(fields["file"])
    if main not in files:
        raise RuntimeError(f"main file {main} was not produced in {folder}")
    manifest = dict(fields)
    manifest.update(
        digest=folder_digest(files),
        sha256=files[main]["sha256"],
        size=files[main]["size"],
        files=files,
        built_at=_dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
    )
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_manifest(folder: Path) -> dict[str, object] | None:
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_folder(folder: Path, recipe_hash: str) -> str | None:
    """None when `folder` holds a complete build of `recipe_hash`; otherwise why not."""
    manifest = read_manifest(folder)
    if manifest is None:
        return "no manifest"
    if manifest.get("recipe_hash") != recipe_hash:
        return "built from another recipe"
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        return "manifest lists no files"
    for rel, entry in files.items():
        path = folder / rel
        if not path.is_file():
            return f"{rel} missing"
        if path.stat().st_size != entry.get("size"):
            return f"{rel} has another size"
        if sha256_file(path) != entry.get("sha256"):
            return f"{rel} has another sha256"
    return None


def replace_folder(src: Path, dest: Path, *, move: bool = False) -> None:
    """Put a copy of `src` (or `src` itself when move=True) at `dest`, swapping it in at once,
    so readers never see a half-written model folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    if move:
        os.replace(src, tmp) if src.parent == dest.parent else shutil.move(str(src), str(tmp))
    else:
        shutil.copytree(src, tmp)
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def human_size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
