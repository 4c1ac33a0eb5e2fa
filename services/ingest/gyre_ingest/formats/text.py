"""Plain text: decoded (declared charset, UTF-8 or detected encoding) and cleaned."""

from __future__ import annotations

from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats.base import ExtractedDocument

MEDIA_TYPE = "text/plain"


def extract_text(data: bytes, charset: str | None) -> ExtractedDocument:
    return ExtractedDocument(text=clean_text(decode_text(data, charset)), content_type=MEDIA_TYPE)
