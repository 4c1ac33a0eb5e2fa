"""PDF: the text of each page (pypdf), running headers and footers removed, page spans kept."""

from __future__ import annotations

import io
import logging

import pypdf
from pypdf import PasswordType

from gyre_ingest.cleaning import clean_text, remove_repeated_page_lines
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError, Page

MEDIA_TYPE = "application/pdf"
PAGE_SEPARATOR = "\n\n"


def extract_pdf(data: bytes) -> ExtractedDocument:
    # pypdf logs every recoverable defect of a damaged file as a warning; the outcome is what counts.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ExtractionError("encrypted_pdf", "the PDF is protected by a password; submit an unprotected copy")
        raw_pages = [page.extract_text() or "" for page in reader.pages]
        title = _metadata_title(reader)
    except ExtractionError:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files; all mean the same here
        if "cryptography" in str(exc) or "AES" in str(exc):
            raise ExtractionError("encrypted_pdf", f"the PDF is encrypted in a way that cannot be read: {exc}") from exc
        raise ExtractionError("corrupt_pdf", f"the PDF could not be read: {type(exc).__name__}: {exc}") from exc
    page_texts = [clean_text(text) for text in remove_repeated_page_lines([clean_text(t) for t in raw_pages])]
    text, pages = _join_pages(page_texts)
    if not text:
        raise ExtractionError(
            "no_text",
            f"the PDF's {len(raw_pages)} page(s) hold no extractable text (a scan or images only?); "
            "run OCR on it first",
        )
    return ExtractedDocument(text=text, content_type=MEDIA_TYPE, pages=tuple(pages), title=title)


def _join_pages(page_texts: list[str]) -> tuple[str, list[Page]]:
    """Pages joined by a blank line; pages without text get no span (their numbers stay as they were)."""
    parts: list[str] = []
    pages: list[Page] = []
    offset = 0
    for number, page_text in enumerate(page_texts, start=1):
        if not page_text:
            continue
        if parts:
            parts.append(PAGE_SEPARATOR)
            offset += len(PAGE_SEPARATOR)
        parts.append(page_text)
        pages.append(Page(number=number, start=offset, end=offset + len(page_text)))
        offset += len(page_text)
    return "".join(parts), pages


def _metadata_title(reader: pypdf.PdfReader) -> str:
    try:
        metadata = reader.metadata
        title = metadata.title if metadata is not None else None
    except Exception:  # a broken info dictionary costs the title, not the document
        return ""
    return clean_text(str(title)) if title else ""
