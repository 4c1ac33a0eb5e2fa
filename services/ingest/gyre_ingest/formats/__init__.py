"""Submitted bytes of any supported format as clean text: detect the format, then run its extractor."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import PurePosixPath

from gyre_ingest.formats.base import ExtractedDocument, ExtractionError, ExtractOptions, Page

__all__ = [
    "SUPPORTED_TYPES",
    "ExtractOptions",
    "ExtractedDocument",
    "ExtractionError",
    "Page",
    "detect_media_type",
    "extract",
    "parse_content_type",
]

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
JSON = "application/json"
JSONL = "application/x-ndjson"
SUPPORTED_TYPES = (
    "text/plain",
    "text/markdown",
    "text/html",
    PDF,
    DOCX,
    JSON,
    JSONL,
    "text/csv",
    "text/tab-separated-values",
)
_ALIASES = {
    "text/x-markdown": "text/markdown",
    "text/md": "text/markdown",
    "application/xhtml+xml": "text/html",
    "application/x-pdf": PDF,
    "text/json": JSON,
    "application/jsonl": JSONL,
    "application/x-jsonl": JSONL,
    "application/jsonlines": JSONL,
    "application/x-jsonlines": JSONL,
    "application/ndjson": JSONL,
    "text/x-ndjson": JSONL,
    "application/csv": "text/csv",
    "text/comma-separated-values": "text/csv",
    "text/x-csv": "text/csv",
    "text/tsv": "text/tab-separated-values",
}
# Declared types that say nothing about the content: the bytes and the file name decide.
_UNDECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream", "application/unknown"})
_EXTENSIONS = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".rst": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".xhtml": "text/html",
    ".pdf": PDF,
    ".docx": DOCX,
    ".json": JSON,
    ".jsonl": JSONL,
    ".ndjson": JSONL,
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
}
# Common binary formats, named so that a rejection says what was sent.
_OTHER_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\xd0\xcf\x11\xe0", "a legacy Microsoft Office file (.doc/.xls/.ppt; save it as .docx)"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "an executable"),
    (b"{\\rtf", "an RTF document"),
)
DEFAULT_OPTIONS = ExtractOptions()


def extract(
    data: bytes, content_type: str, *, filename: str = "", options: ExtractOptions = DEFAULT_OPTIONS
) -> ExtractedDocument:
    """The cleaned text of ``data``; raises ``ExtractionError`` (and nothing else) when it cannot be read."""
    if len(data) > options.max_bytes:
        raise ExtractionError(
            "too_large", f"the content is {len(data)} bytes, more than the limit of {options.max_bytes} bytes"
        )
    media_type, charset = detect_media_type(data, content_type, filename=filename)
    try:
        return _extractor(media_type, charset, options)(data)
    except (ExtractionError, MemoryError):
        raise  # MemoryError: the extraction worker's limit, which rejects the document `too_large`
    except Exception as exc:  # a library failure we did not foresee is still a reason, not a crash
        raise ExtractionError(
            "extraction_failed", f"the {media_type} content could not be read: {type(exc).__name__}: {exc}"
        ) from exc


def parse_content_type(content_type: str) -> tuple[str, str | None]:
    """The normalised media type (aliases resolved) and the charset parameter, if any."""
    media_type, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip("\"'"):
            charset = value.strip().strip("\"'")
    media_type = media_type.strip().lower()
    return _ALIASES.get(media_type, media_type), charset


def detect_media_type(data: bytes, content_type: str, *, filename: str = "") -> tuple[str, str | None]:
    """The media type to extract as, and the declared charset: the declared type unless it says nothing."""
    media_type, charset = parse_content_type(content_type)
    if media_type in _UNDECLARED:
        media_type = _sniff(data, filename)
    if media_type not in SUPPORTED_TYPES:
        raise ExtractionError(
            "unsupported_type",
            f"content type {content_type!r} is not supported; supported: {', '.join(SUPPORTED_TYPES)}",
        )
    return media_type, charset


def _sniff(data: bytes, filename: str) -> str:
    head = data[:1024]
    if b"%PDF-" in head:
        return PDF
    if head.startswith(b"PK\x03\x04"):
        if _is_docx(data):
            return DOCX
        raise ExtractionError("unsupported_type", "the content is a ZIP archive, not a Word (.docx) document")
    for magic, what in _OTHER_MAGIC:
        if head.startswith(magic):
            raise ExtractionError("unsupported_type", f"the content is {what}, which is not a supported format")
    by_extension = _EXTENSIONS.get(PurePosixPath(filename.replace("\\", "/")).suffix.lower())
    if by_extension:
        return by_extension
    return _sniff_text(data)


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _sniff_text(data: bytes) -> str:
    start = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")) or (
        start.startswith(b"<") and any(tag in start for tag in (b"<html", b"<head", b"<body"))
    ):
        return "text/html"
    if start.startswith((b"{", b"[")):
        try:
            json.loads(data)
            return JSON
        except ValueError:
            lines = [line for line in data.splitlines() if line.strip()]
            if all(_is_json(line) for line in lines[:100]):
                return JSONL
    return "text/plain"


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _extractor(media_type: str, charset: str | None, options: ExtractOptions) -> Callable[[bytes], ExtractedDocument]:
    # Imported on first use: a service that never sees a PDF never loads pypdf.
    if media_type == "text/plain":
        from gyre_ingest.formats.text import extract_text

        return lambda data: extract_text(data, charset)
    if media_type == "text/markdown":
        from gyre_ingest.formats.markdown import extract_markdown

        return lambda data: extract_markdown(data, charset)
    if media_type == "text/html":
        from gyre_ingest.formats.html import extract_html

        return lambda data: extract_html(data, charset)
    if media_type == PDF:
        from gyre_ingest.formats.pdf import extract_pdf

        return lambda data: extract_pdf(data, options.max_chars)
    if media_type == DOCX:
        from gyre_ingest.formats.docx import extract_docx

        return lambda data: extract_docx(data, options.max_unpacked_bytes)
    if media_type == JSON:
        from gyre_ingest.formats.jsonl import extract_json

        return lambda data: extract_json(data, charset, options.json_text_fields)
    if media_type == JSONL:
        from gyre_ingest.formats.jsonl import extract_json_lines

        return lambda data: extract_json_lines(data, charset, options.json_text_fields)
    from gyre_ingest.formats.csv import extract_csv

    return lambda data: extract_csv(data, charset, media_type, options.csv_text_columns)
