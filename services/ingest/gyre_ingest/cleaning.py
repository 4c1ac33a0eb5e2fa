"""Cleaning extracted text: decoding bytes, Unicode and whitespace normalisation, repeated page lines."""

from __future__ import annotations

import codecs
import math
import re
import unicodedata
from collections import Counter

import charset_normalizer

from gyre_ingest.formats.base import ExtractionError

# Control characters other than tab and newline (C0, DEL, C1); line ends are normalised before this runs.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
# Invisible characters that only get in the way of search: BOM/zero-width no-break space, zero-width
# space, soft hyphen. Joiners (U+200C, U+200D) are kept: some scripts and emoji need them.
_INVISIBLE = re.compile("[\ufeff\u200b\u00ad]")
_LINE_ENDS = re.compile(r"\r\n|\r|[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# Tabs and every Unicode space separator (no-break, thin, ideographic ...) collapse to one space.
_SPACES = re.compile(r"[\t \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_DIGITS = re.compile(r"\d+")

# Byte order marks, longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Decoded text with more than this share of control or unassigned characters is binary, not text.
# Binary data read as a single-byte encoding is about a quarter control characters; text with a stray
# NUL or escape code is far below this.
_MAX_UNPRINTABLE_RATIO = 0.1
# Guesses within this much of charset-normalizer's lowest "chaos" are equally plausible.
_CHAOS_TOLERANCE = 0.05


def clean_text(text: str) -> str:
    """NFC, Unix line ends, no control characters, single spaces, trimmed lines, at most one blank line."""
    text = unicodedata.normalize("NFC", text)
    text = _LINE_ENDS.sub("\n", text)
    text = _CONTROL.sub("", text)
    text = _INVISIBLE.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def remove_repeated_page_lines(pages: list[str], min_fraction: float = 0.6) -> list[str]:
    """Each page without the running headers and footers it shares with the other pages.

    A line is a running header or footer when it is among the first or last three non-empty lines
    of at least ``min_fraction`` of the pages, and of at least three pages. Digits are ignored when
    comparing, so "Page 3 of 10" and "Page 4 of 10" are the same line. Lines in the middle of a page
    are never removed.
    """
    if len(pages) < 3:
        return list(pages)
    page_lines = [page.split("\n") for page in pages]
    edges = [_edge_line_indexes(lines) for lines in page_lines]
    seen_on_pages: Counter[str] = Counter()
    for lines, indexes in zip(page_lines, edges, strict=True):
        seen_on_pages.update({_page_line_key(lines[i]) for i in indexes})
    needed = max(3, math.ceil(min_fraction * len(pages)))
    repeated = {key for key, count in seen_on_pages.items() if count >= needed}
    if not repeated:
        return list(pages)
    cleaned: list[str] = []
    for lines, indexes in zip(page_lines, edges, strict=True):
        drop = {i for i in indexes if _page_line_key(lines[i]) in repeated}
        cleaned.append("\n".join(line for i, line in enumerate(lines) if i not in drop))
    return cleaned


def _edge_line_indexes(lines: list[str]) -> set[int]:
    non_empty = [i for i, line in enumerate(lines) if line.strip()]
    return set(non_empty[:3]) | set(non_empty[-3:])


def _page_line_key(line: str) -> str:
    return " ".join(_DIGITS.sub("#", line).casefold().split())


def decode_text(data: bytes, declared_charset: str | None) -> str:
    """Bytes as text: by byte order mark, then the declared charset, then UTF-8, then detection.

    Raises ``ExtractionError("undecodable")`` for binary data or when no encoding fits well enough.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return _checked(data[len(bom) :].decode(encoding))
            except UnicodeDecodeError as exc:
                raise ExtractionError(
                    "undecodable",
                    f"the content starts with a {encoding} byte order mark but is not valid {encoding}: {exc}",
                ) from exc
    if declared_charset:
        declared = _known_codec(declared_charset)
        if declared is not None:
            try:
                return _checked(data.decode(declared))
            except (UnicodeDecodeError, ExtractionError):
                pass  # servers often mislabel; the checks below still find the right encoding
    try:
        return _checked(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return _checked(_detect_and_decode(data))


def _known_codec(charset: str) -> str | None:
    try:
        return codecs.lookup(charset.strip().strip("\"'")).name
    except LookupError:
        return None


def _detect_and_decode(data: bytes) -> str:
    nul_ratio = data.count(0) / len(data)
    matches = [
        match
        for match in charset_normalizer.from_bytes(data)
        # Without a byte order mark, UTF-16/32 text is full of NUL bytes; a guess of UTF-16 for data
        # without them (common for short Latin-1 text) is wrong.
        if nul_ratio >= 0.2 or not match.encoding.startswith(("utf_16", "utf_32"))
    ]
    if not matches:
        raise ExtractionError(
            "undecodable",
            "the content is not text in any encoding that could be detected (binary data, or declare its charset)",
        )
    lowest_chaos = min(match.chaos for match in matches)
    plausible = [match for match in matches if match.chaos <= lowest_chaos + _CHAOS_TOLERANCE]
    # Western European text is far more often cp1252 than the cp1250 that detection tends to pick
    # for it (which turns "è" into "č"), so cp1252 wins whenever it reads the bytes as plausibly.
    try:
        western: str | None = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and any(m.encoding == "cp1252" or str(m) == western for m in plausible):
        return western
    return str(plausible[0])


def _checked(text: str) -> str:
    if text:
        # Counting distinct characters first keeps this linear in C, not a Python call per character.
        unprintable = sum(count for char, count in Counter(text).items() if _is_unprintable(char))
        if unprintable / len(text) > _MAX_UNPRINTABLE_RATIO:
            raise ExtractionError(
                "undecodable",
                f"the content decodes to text that is {unprintable / len(text):.0%} "
                "control or unassigned characters: it is binary data, not text",
            )
    return text


def _is_unprintable(char: str) -> bool:
    if char in "\t\n\r\x0b\x0c":
        return False
    return unicodedata.category(char) in ("Cc", "Cn", "Cs")
