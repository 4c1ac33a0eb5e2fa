"""The types every document format shares: what extraction returns, its options and its error."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    """One page of a paged document: its 1-based number and its span in ``ExtractedDocument.text``."""

    number: int
    start: int
    end: int


@dataclass(frozen=True)
class ExtractedDocument:
    """A document's cleaned text, with headings as Markdown ``#`` lines and blank lines between paragraphs."""

    text: str
    content_type: str
    pages: tuple[Page, ...] = ()
    title: str = ""


@dataclass(frozen=True)
class ExtractOptions:
    """How to read structured formats, and how large a document may be before it is read at all."""

    # Dotted paths into each JSON record; a list on the way is searched element by element.
    json_text_fields: tuple[str, ...] = ("text", "content", "body")
    # Empty: every column, rendered as "column: value" lines, one block per row.
    csv_text_columns: tuple[str, ...] = ()
    max_bytes: int = 64 * 1024 * 1024
    # Work caps checked before the expensive part of reading (``too_large``): what a DOCX's parts unpack
    # to (their declared sizes, which Python's zipfile enforces while reading), and the characters a
    # document may have, from which a PDF's page and content-stream budgets follow.
    max_unpacked_bytes: int = 256 * 1024 * 1024
    max_chars: int = 2_000_000


class ExtractionError(ValueError):
    """Content that cannot be turned into text; ``code`` is a stable reason, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ExtractionError(code={self.code!r}, message={self.message!r})"
