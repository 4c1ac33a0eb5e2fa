"""DOCX: paragraphs in document order (python-docx), Heading 1..6 as '#' lines, lists, tables as rows."""

from __future__ import annotations

import io
import re
import zipfile

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from gyre_ingest.cleaning import clean_text
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE = re.compile(r"^list\b", re.IGNORECASE)

DEFAULT_MAX_UNPACKED_BYTES = 256 * 1024 * 1024
# Word's XML packs 5-20 times; a part that unpacks to more than this many times its packed size, and to
# more than BOMB_MIN_BYTES, is a decompression bomb (deflate reaches ~1000:1 on repeated bytes).
MAX_PACKING_RATIO = 200
BOMB_MIN_BYTES = 1024 * 1024


def extract_docx(data: bytes, max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES) -> ExtractedDocument:
    check_unpacked_size(data, max_unpacked_bytes)
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [block for item in document.iter_inner_content() if (block := _render(item))]
        title = (document.core_properties.title or "").strip()
    except MemoryError:
        raise
    except Exception as exc:  # zip, package and XML errors from deep inside python-docx all mean the same
        raise ExtractionError("corrupt_docx", f"the DOCX file could not be read: {type(exc).__name__}: {exc}") from exc
    text = clean_text(_join(blocks))
    if not title:
        title = next((line.lstrip("#").strip() for line in text.split("\n") if line.startswith("#")), "")
    return ExtractedDocument(text=text, content_type=MEDIA_TYPE, title=clean_text(title))


def check_unpacked_size(data: bytes, max_unpacked_bytes: int) -> None:
    """Refuses (``too_large``) a DOCX whose parts would unpack to too much, before any part is read.

    Reads only the ZIP's central directory. The declared sizes are a real bound: Python's zipfile stops
    a part at its declared size (and a part that decompresses past it fails its CRC check).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ExtractionError("corrupt_docx", f"the DOCX file is not a valid ZIP archive: {exc}") from exc
    total = sum(member.file_size for member in members)
    if total > max_unpacked_bytes:
        raise ExtractionError(
            "too_large",
            f"the DOCX file's parts unpack to {total} bytes, more than the limit of {max_unpacked_bytes} bytes "
            "(GYRE_MAX_UNPACKED_MB)",
        )
    for member in members:
        if member.file_size > BOMB_MIN_BYTES and member.file_size > MAX_PACKING_RATIO * max(member.compress_size, 1):
            raise ExtractionError(
                "too_large",
                f"the DOCX part {member.filename!r} unpacks from {member.compress_size} to {member.file_size} bytes, "
                f"more than {MAX_PACKING_RATIO} times its packed size: a decompression bomb, not a document",
            )


def _render(item: Paragraph | Table) -> str:
    if isinstance(item, Table):
        return _render_table(item)
    text = " ".join(item.text.split())
    if not text:
        return ""
    style = item.style.name if item.style is not None and item.style.name else ""
    heading = _HEADING_STYLE.match(style)
    if heading:
        return "#" * min(int(heading.group(1)), 6) + " " + text
    if style.lower() == "title":
        return "# " + text
    if _LIST_STYLE.match(style) or (item._p.pPr is not None and item._p.pPr.numPr is not None):
        return "- " + text
    return text


def _render_table(table: Table) -> str:
    rows: list[str] = []
    for row in table.rows:
        cells: list[str] = []
        for cell in row.cells:
            text = " ".join(cell.text.split())
            # python-docx repeats a merged cell once per grid column it spans.
            if text and (not cells or cells[-1] != text):
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _join(blocks: list[str]) -> str:
    """Blocks separated by blank lines, except consecutive list items, which stay on adjacent lines."""
    out: list[str] = []
    for block in blocks:
        if out:
            out.append("\n" if block.startswith("- ") and out[-1].startswith("- ") else "\n\n")
        out.append(block)
    return "".join(out)
