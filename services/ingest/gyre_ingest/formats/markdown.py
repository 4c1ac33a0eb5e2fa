"""Markdown: decoded and cleaned, front matter dropped, underlined headings rewritten as '#' lines."""

from __future__ import annotations

import re

from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats.base import ExtractedDocument

MEDIA_TYPE = "text/markdown"

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
# No pattern here backtracks on a long line: runs are possessive, and a title's trailing blanks are
# dropped by a greedy run that must end on a non-blank, not by a lazy title before an optional tail.
_FRONT_MATTER_TITLE = re.compile(r"^title:[ \t]*+([^\n]*[^ \t\n])", re.MULTILINE)
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=++|-++)[ \t]*+$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_BLOCK_START = re.compile(r"^ {0,3}([-*+>|]|\d++[.)])\s")


def extract_markdown(data: bytes, charset: str | None) -> ExtractedDocument:
    text = decode_text(data, charset).replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    title = ""
    front = _FRONT_MATTER.match(text)
    if front:
        found = _FRONT_MATTER_TITLE.search(front.group(1))
        title = found.group(1).strip("\"'") if found else ""
        text = text[front.end() :]
    text = clean_text(_atx_headings(text))
    if not title:
        title = _first_heading(text)
    return ExtractedDocument(text=text, content_type=MEDIA_TYPE, title=title)


def _atx_headings(text: str) -> str:
    """Underlined (setext) headings as '#' lines, so every heading reads the same to the chunker."""
    lines = text.split("\n")
    out: list[str] = []
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        underline = None if in_fence else _SETEXT_UNDERLINE.match(line)
        previous = out[-1] if out else ""
        if (
            underline
            and previous.strip()
            and _atx_heading_title(previous) is None
            and not _BLOCK_START.match(previous)
            and not (len(out) >= 2 and out[-2].strip() and not out[-2].startswith("#"))
        ):
            marker = "#" if underline.group(1).startswith("=") else "##"
            out[-1] = f"{marker} {previous.strip()}"
            continue
        out.append(line)
    return "\n".join(out)


def _first_heading(text: str) -> str:
    for line in text.split("\n"):
        title = _atx_heading_title(line)
        if title is not None:
            return title.strip()
    return ""


def _atx_heading_title(line: str) -> str | None:
    """The title of a ``#`` heading line with text after its marks (trailing blanks and ``#`` dropped), else None.

    Scanned by hand: the regex this replaces (a lazy title before ``[ \t#]*$``) was quadratic on ``# a # # ... b``.
    """
    indent = len(line) - len(line.lstrip(" "))
    after_marks = len(line) - len(line[indent:].lstrip("#"))
    rest = line[after_marks:]
    if indent > 3 or not 1 <= after_marks - indent <= 6 or len(rest) < 2 or rest[0] not in " \t":
        return None
    body = rest.lstrip(" \t")
    # The title has at least one character: a blank one when only blanks follow the marks.
    return (body.rstrip(" \t#") or body[:1]) if body else rest[-1]
