"""PDF: the text of each page (pypdf), running headers and footers removed, page spans kept."""

from __future__ import annotations

import io
import logging

import pypdf
from pypdf import PageObject, PasswordType
from pypdf.generic import ArrayObject, StreamObject

from gyre_ingest.cleaning import clean_text, remove_repeated_page_lines
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError, Page

MEDIA_TYPE = "application/pdf"
PAGE_SEPARATOR = "\n\n"

# Budgets that follow from the largest document (GYRE_MAX_DOCUMENT_CHARS), checked before the text of any
# page is extracted: extraction parses each page's content streams again, so pages that share one large
# stream multiply its cost (a 7 KB file can ask for gigabytes of parsing).
DEFAULT_MAX_CHARS = 2_000_000
CONTENT_BYTES_PER_CHAR = 64  # decoded content-stream bytes parsed, over all pages, per allowed character
CHARS_PER_PAGE = 100  # pages allowed: one per this many allowed characters (20,000 at the default)
# Raw extracted text may be this many times the allowed characters (cleaning removes white space and
# running headers); past it the rest of the pages are not read.
RAW_TEXT_SLACK = 2


def extract_pdf(data: bytes, max_chars: int = DEFAULT_MAX_CHARS) -> ExtractedDocument:
    # pypdf logs every recoverable defect of a damaged file as a warning; the outcome is what counts.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
            raise ExtractionError("encrypted_pdf", "the PDF is protected by a password; submit an unprotected copy")
        pdf_pages = list(reader.pages)
        _check_work(pdf_pages, max_chars)
        raw_pages: list[str] = []
        raw_chars = 0
        for page in pdf_pages:
            raw_pages.append(page.extract_text() or "")
            raw_chars += len(raw_pages[-1])
            if raw_chars > RAW_TEXT_SLACK * max_chars:
                raise ExtractionError(
                    "too_large",
                    f"the PDF's first {len(raw_pages)} of {len(pdf_pages)} pages already hold {raw_chars} characters, "
                    f"far more than the limit of {max_chars} (GYRE_MAX_DOCUMENT_CHARS)",
                )
        title = _metadata_title(reader)
    except (ExtractionError, MemoryError):
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


def _check_work(pages: list[PageObject], max_chars: int) -> None:
    """Refuses (``too_large``) a PDF with more pages, or more content to parse, than its budgets allow."""
    max_pages = max(1, max_chars // CHARS_PER_PAGE)
    if len(pages) > max_pages:
        raise ExtractionError(
            "too_large",
            f"the PDF has {len(pages)} pages, more than the limit of {max_pages} "
            f"(one per {CHARS_PER_PAGE} characters of GYRE_MAX_DOCUMENT_CHARS)",
        )
    budget = CONTENT_BYTES_PER_CHAR * max_chars
    work = 0
    for number, page in enumerate(pages, start=1):
        work += _content_bytes(page)
        if work > budget:
            raise ExtractionError(
                "too_large",
                f"the PDF's first {number} of {len(pages)} pages have more than {budget} bytes of content streams "
                f"to parse (pages sharing one large stream parse it once each), more than the budget of "
                f"{CONTENT_BYTES_PER_CHAR} bytes per character of GYRE_MAX_DOCUMENT_CHARS",
            )


def _content_bytes(page: PageObject) -> int:
    """Decoded bytes of the page's content streams (a stream shared by pages is decoded once, counted per page)."""
    contents = page.get("/Contents")
    if contents is None:
        return 0
    contents = contents.get_object()
    streams = contents if isinstance(contents, ArrayObject) else [contents]
    total = 0
    for stream in streams:
        stream = stream.get_object()
        if isinstance(stream, StreamObject):
            total += len(stream.get_data())
    return total


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
