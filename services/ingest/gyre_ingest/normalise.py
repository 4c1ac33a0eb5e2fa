"""Turning submitted content into clean text: decoding, Unicode normalisation, whitespace."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata

SUPPORTED_TYPES = ("text/plain", "text/markdown")

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


class ContentError(ValueError):
    """Content that cannot be turned into text; ``code`` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def decode_content(text: str | None, content: str | None, content_type: str) -> str:
    """The document's text from either ``text`` or base64 ``content`` of a supported type."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in SUPPORTED_TYPES:
        supported = ", ".join(SUPPORTED_TYPES)
        raise ContentError("unsupported_type", f"content type {content_type!r} is not one of {supported}")
    if (text is None) == (content is None):
        raise ContentError("bad_request", "exactly one of text or content must be set")
    if text is not None:
        return text
    assert content is not None
    try:
        raw = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContentError("undecodable", f"content is not valid base64: {exc}") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContentError("undecodable", f"content is not UTF-8 text: {exc}") from exc


def normalise_text(text: str) -> str:
    """NFC, no control characters, Unix line ends, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
