"""What `gyre ingest` reads: files found in folders (glob filters), and URLs fetched within size and time limits."""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx

from gyre_contracts.media_types import guess_content_type

DEFAULT_INCLUDE = ("*.txt", "*.md", "*.markdown", "*.html", "*.htm", "*.pdf", "*.docx", "*.json", "*.jsonl", "*.csv")


class InputError(ValueError):
    """Arguments that name nothing to ingest, or two inputs that would share a document id."""


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class FileInput:
    path: Path
    document_id: str
    source: str  # the path as the user wrote it, joined with the file's path under it


@dataclass(frozen=True)
class UrlInput:
    url: str
    document_id: str

    @property
    def source(self) -> str:
        return self.url


Input = FileInput | UrlInput


def is_url(argument: str) -> bool:
    return urlsplit(argument).scheme in ("http", "https")


def matches_any(relative: PurePosixPath, patterns: Iterable[str]) -> bool:
    """A glob matches a file's name or its path under the root (``*.md``, ``guide/*``), ignoring case."""
    name, text = relative.name.lower(), relative.as_posix().lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) or fnmatch.fnmatchcase(text, p.lower()) for p in patterns)


def discover_files(
    root: Path, include: Sequence[str] = DEFAULT_INCLUDE, exclude: Sequence[str] = (), *, hidden: bool = False
) -> list[PurePosixPath]:
    """Files under ``root`` (recursive), as sorted paths relative to it.

    A file is taken when a pattern of ``include`` matches it and none of ``exclude`` does; an
    excluded folder is not entered. Names starting with ``.`` (``.git``, ``.DS_Store``) are
    skipped unless ``hidden``. Symbolic links to folders are not followed.
    """
    found: list[PurePosixPath] = []
    for folder, dirnames, filenames in os.walk(root):
        here = PurePosixPath(Path(folder).relative_to(root).as_posix())
        dirnames[:] = sorted(
            d for d in dirnames
            if (hidden or not d.startswith(".")) and not matches_any(here / d, exclude)
        )
        for name in filenames:
            relative = here / name
            if not hidden and name.startswith("."):
                continue
            if matches_any(relative, include) and not matches_any(relative, exclude):
                found.append(relative)
    return sorted(found)


def collect_inputs(
    arguments: Sequence[str],
    *,
    include: Sequence[str] = DEFAULT_INCLUDE,
    exclude: Sequence[str] = (),
    id_prefix: str = "",
    hidden: bool = False,
) -> list[Input]:
    """Every document the arguments name, with its id: path under the given folder, file name, or URL.

    A file named on the command line is always taken (filters apply inside folders).
    """
    inputs: list[Input] = []
    for argument in arguments:
        if is_url(argument):
            inputs.append(UrlInput(url=argument, document_id=id_prefix + argument))
            continue
        path = Path(argument)
        if path.is_dir():
            for relative in discover_files(path, include, exclude, hidden=hidden):
                inputs.append(
                    FileInput(path=path / relative, document_id=id_prefix + relative.as_posix(),
                              source=str(path / relative))
                )
        elif path.is_file():
            inputs.append(FileInput(path=path, document_id=id_prefix + path.name, source=str(path)))
        else:
            raise InputError(f"no such file, folder or http(s) URL: {argument}")
    owners: dict[str, str] = {}
    for item in inputs:
        if item.document_id in owners and owners[item.document_id] != item.source:
            raise InputError(
                f"{owners[item.document_id]} and {item.source} would both be document {item.document_id!r}; "
                "ingest them in separate runs with different --id-prefix"
            )
        owners[item.document_id] = item.source
    unique: dict[str, Input] = {i.document_id: i for i in inputs}  # the same file named twice is one input
    return list(unique.values())


# ---------------------------------------------------------------- reading and fetching


@dataclass(frozen=True)
class Loaded:
    data: bytes
    content_type: str
    title: str


class LoadError(Exception):
    """An input that could not be read or fetched; ``code`` is what the summary counts."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_file(path: Path, max_bytes: int) -> Loaded:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError("too_large", f"{size} bytes, over --max-bytes {max_bytes}")
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError("unreadable", f"{type(exc).__name__}: {exc.strerror or exc}") from exc
    if not data:
        raise LoadError("empty", "the file is empty")
    return Loaded(data=data, content_type=guess_content_type(path.name), title=path.stem)


def url_title(url: str) -> str:
    parts = urlsplit(url)
    name = PurePosixPath(parts.path).name
    return PurePosixPath(name).stem if name else parts.hostname or url


async def fetch_url(http: httpx.AsyncClient, url: str, *, max_bytes: int, timeout_s: float) -> Loaded:
    """GET a URL, streamed: aborted past ``max_bytes`` or ``timeout_s`` (the whole fetch, redirects included)."""
    try:
        async with asyncio.timeout(timeout_s), http.stream("GET", url, timeout=timeout_s) as response:
            if response.status_code >= 400:
                raise LoadError(f"http_{response.status_code}", f"GET {url} answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise LoadError("too_large", f"{declared} bytes declared, over --max-bytes {max_bytes}")
            chunks: list[bytes] = []
            received = 0
            async for chunk in response.aiter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise LoadError("too_large", f"more than --max-bytes {max_bytes} bytes; download stopped")
                chunks.append(chunk)
            content_type = response.headers.get("content-type") or guess_content_type(urlsplit(url).path)
    except TimeoutError as exc:
        raise LoadError("timeout", f"no complete answer within --fetch-timeout {timeout_s:g} s") from exc
    except httpx.TimeoutException as exc:
        raise LoadError("timeout", f"{type(exc).__name__} within --fetch-timeout {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise LoadError("connection_error", f"{type(exc).__name__}: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise LoadError("invalid_url", str(exc)) from exc
    data = b"".join(chunks)
    if not data:
        raise LoadError("empty", f"GET {url} returned no content")
    return Loaded(data=data, content_type=content_type, title=url_title(url))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
