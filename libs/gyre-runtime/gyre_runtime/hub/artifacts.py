"""A model version's files in the NATS Object Store: upload, check against the manifest, download verified.

The Object Store keeps a SHA-256 of each object in its metadata, but that digest is of whatever was
put last under the name: an object overwritten with other bytes carries a matching digest of the
wrong bytes. So every check here compares against the manifest's sha256 (the build's), never only
against the store's own digest.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, cast

from nats.js import api as js_api
from nats.js.errors import DigestMismatchError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from gyre_runtime.hub.records import ArtifactMismatch, ModelVersion
from gyre_runtime.models.manifest import FileEntry, ManifestError, load_manifest, verify_manifest

# Fewer, larger chunks than nats-py's 128 KiB (each one is a JetStream publish awaited in turn); well
# under the server's default 1 MiB message limit.
CHUNK_SIZE = 512 * 1024
_DIGEST_PREFIX = "SHA-256="


def object_sha256(info: js_api.ObjectInfo) -> str | None:
    """The hex sha256 the store records for an object (``SHA-256=<base64url>``); None when unreadable."""
    digest = info.digest or ""
    if not digest.upper().startswith(_DIGEST_PREFIX):
        return None
    encoded = digest[len(_DIGEST_PREFIX):]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).hex()
    except (binascii.Error, ValueError):
        return None


async def object_matches(store: ObjectStore, name: str, entry: FileEntry) -> str | None:
    """None when the object ``name`` holds ``entry``'s bytes (size and sha256), else what is wrong."""
    try:
        info = await store.get_info(name)
    except ObjectNotFoundError:
        return f"object {name!r} is missing"
    if info.size != entry.size:
        return f"object {name!r} has {info.size} bytes, the manifest says {entry.size}"
    if object_sha256(info) != entry.sha256:
        return f"object {name!r} has another sha256 than the manifest's"
    return None


async def artifact_problems(store: ObjectStore, version: ModelVersion) -> list[str]:
    """Every file of ``version`` whose object is missing or differs from the manifest; [] when all match."""
    expected = version.expected_files()
    problems = [f"{rel}: no object recorded" for rel in sorted(set(expected) - set(version.artifacts))]
    for rel, name in sorted(version.artifacts.items()):
        entry = expected.get(rel)
        if entry is None:
            problems.append(f"{rel}: object {name!r} is not a file of the manifest")
            continue
        problem = await object_matches(store, name, entry)
        if problem:
            problems.append(f"{rel}: {problem}")
    return problems


async def upload(store: ObjectStore, folder: Path, version: ModelVersion) -> list[str]:
    """Put every file of ``version`` from ``folder`` whose object is not already right; the files put."""
    expected = version.expected_files()
    uploaded = []
    for rel, name in sorted(version.artifacts.items()):
        if await object_matches(store, name, expected[rel]) is None:
            continue  # pushed before (same bytes): a second push sends nothing
        meta = js_api.ObjectMeta(
            name=name, description=f"{version.id} {rel}",
            options=js_api.ObjectMetaOptions(max_chunk_size=CHUNK_SIZE),
        )
        with (folder / rel).open("rb") as data:
            await store.put(name, data, meta=meta)
        uploaded.append(rel)
    return uploaded


class _HashingWriter:
    """A file that hashes what is written to it: the download's checksum without reading it back."""

    def __init__(self, file: IO[bytes]) -> None:
        self.file = file
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.file.write(data)


async def download(store: ObjectStore, name: str, path: Path, entry: FileEntry) -> None:
    """Write object ``name`` to ``path``; ArtifactMismatch unless its bytes are ``entry``'s."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        writer = _HashingWriter(file)
        try:
            await store.get(name, writeinto=cast(io.BufferedIOBase, writer))
        except ObjectNotFoundError:
            raise ArtifactMismatch(f"{path.name}: object {name!r} is missing from the Object Store") from None
        except DigestMismatchError:
            raise ArtifactMismatch(f"{path.name}: object {name!r} arrived damaged (digest mismatch)") from None
    if (writer.size, writer.sha256.hexdigest()) != (entry.size, entry.sha256):
        raise ArtifactMismatch(
            f"{path.name}: object {name!r} is not the file the manifest lists "
            f"({writer.size} bytes, sha256 {writer.sha256.hexdigest()[:12]}; expected {entry.size} bytes, "
            f"sha256 {entry.sha256[:12]})"
        )


def holds_version(folder: Path, version: ModelVersion) -> bool:
    """Whether ``folder`` has ``version``'s manifest (same id and digest) and its files at their sizes.

    Sizes only (the fast start-up check): the service that loads the folder verifies its hashes.
    """
    try:
        manifest = load_manifest(folder)
    except ManifestError:
        return False
    if manifest.model_version != version.id or manifest.digest != version.manifest.digest:
        return False
    return not verify_manifest(folder, check_hashes=False)


def _staging(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))


def _install(staging: Path, target: Path, version: ModelVersion) -> None:
    """Rename the complete ``staging`` folder to ``target`` (replacing a stale copy of something else)."""
    if target.exists() and not holds_version(target, version):
        shutil.rmtree(target)
    try:
        os.rename(staging, target)
    except OSError:
        if not holds_version(target, version):  # else: another pull of the same version finished first
            raise


async def pull(store: ObjectStore, version: ModelVersion, target: Path) -> Path:
    """Download ``version`` into ``target`` through a temporary folder beside it, renamed when complete.

    A pull that fails (a damaged object, a lost connection) leaves nothing at ``target``; two pulls at
    once both succeed (the second to finish finds the first one's folder and keeps it).
    """
    staging = await asyncio.to_thread(_staging, target)
    try:
        expected = version.expected_files()
        for rel, name in sorted(version.artifacts.items()):
            await download(store, name, staging / rel, expected[rel])
        await asyncio.to_thread(_install, staging, target, version)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return target
