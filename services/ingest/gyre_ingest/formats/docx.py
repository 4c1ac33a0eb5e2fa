"""DOCX: paragraphs in document order (python-docx), Heading 1..6 as '#' lines, lists, tables as rows."""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph

from gyre_ingest.cleaning import clean_text
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError

MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_LIST_STYLE = re.compile(r"^list\b", re.IGNORECASE)


def extract_docx(data: bytes) -> ExtractedDocument:
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [block for item in document.iter_inner_content() if (block := _render(item))]
        title = (document.core_properties.title or "").strip()
    except Exception as exc:  # zip, package and XML errors from deep inside python-docx all mean the same
        raise ExtractionError("corrupt_docx", f"the DOCX file could not be read: {type(exc).__name__}: {exc}") from exc
    text = clean_text(_join(blocks))
    if not title:
        title = next((line.lstrip("#").strip() for line in text.split("\n") if line.startswith("#")), "")
    return ExtractedDocument(text=text, content_type=MEDIA_TYPE, title=clean_text(title))


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
