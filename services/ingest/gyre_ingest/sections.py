"""Markdown-ish structure of document text: sections under ATX headings, and their paragraphs, lists and code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gyre_ingest.sentences import trim_span

BlockKind = Literal["paragraph", "list", "code"]


@dataclass
class Block:
    """A paragraph, a run of list items or a fenced code block, as offsets into the text."""

    kind: BlockKind
    start: int
    end: int
    item_starts: list[int] = field(default_factory=list)  # lists only: where each item begins


@dataclass
class Section:
    """The body under one heading (the heading line excluded), up to the next heading of any level."""

    heading_path: tuple[str, ...]
    blocks: list[Block] = field(default_factory=list)


# Fences and list items: possessive runs, so a long run of backticks, tildes or blanks is walked once.
_FENCE_OPEN = re.compile(r" {0,3}(`{3,}+|~{3,}+)(.*)")
_FENCE_CLOSE = re.compile(r" {0,3}(`{3,}+|~{3,}+)[ \t]*+")
_LIST_ITEM = re.compile(r"[ \t]*+(?:[-*+]|(\d{1,9})[.)])(?:[ \t]|$)")


def parse_sections(text: str) -> list[Section]:
    """Markdown-ish structure: ATX ``#`` headings (not inside code fences), blank-line paragraphs,
    ``-``/``*``/``+``/``1.`` list runs and fenced code blocks (``` or ~~~; unclosed runs to the end)."""
    sections = [Section(())]
    titles: list[tuple[int, str]] = []  # the open headings, outermost first: (level, title)
    block: Block | None = None
    fence: tuple[str, int] | None = None  # character and length of the open fence

    def close_block() -> None:
        nonlocal block
        if block is not None:
            sections[-1].blocks.append(block)
            block = None

    for start, end in line_spans(text):
        line = text[start:end]
        if fence is not None and block is not None:
            block.end = end
            closing = _FENCE_CLOSE.fullmatch(line)
            if closing and closing[1][0] == fence[0] and len(closing[1]) >= fence[1]:
                fence = None
                close_block()
            continue
        opening = _FENCE_OPEN.fullmatch(line)
        if opening and not (opening[1][0] == "`" and "`" in opening[2]):
            close_block()
            block, fence = Block("code", start, end), (opening[1][0], len(opening[1]))
            continue
        heading = atx_heading(line)
        if heading:
            close_block()
            level, title = heading
            while titles and titles[-1][0] >= level:
                titles.pop()
            titles.append((level, title.strip()))
            sections.append(Section(tuple(title for _, title in titles if title)))
            continue
        if not line.strip():
            close_block()
            continue
        item = _LIST_ITEM.match(line)
        # An ordered item other than "1." does not interrupt a paragraph (a wrapped line may start "2019. ").
        if item and not (block is not None and block.kind == "paragraph" and item[1] not in (None, "1")):
            if block is not None and block.kind == "list":
                block.item_starts.append(start)
                block.end = end
            else:
                close_block()
                block = Block("list", start, end, [start])
        elif block is not None:
            block.end = end  # a paragraph line, or a continuation line of the current list item
        else:
            block = Block("paragraph", start, end)
    close_block()
    return sections


def atx_heading(line: str) -> tuple[int, str] | None:
    """An ATX heading line's level and title (closing ``#`` run dropped), or None for any other line.

    Up to three spaces, one to six ``#``, then white space or the end of the line; the title is the rest
    without trailing blanks and without a closing run of ``#`` that follows a blank ("## Title ##").
    Scanned by hand, in linear time: a regex with a lazy title and an optional closing run backtracks
    quadratically on lines such as ``# a # # # ... b``.
    """
    indent = len(line) - len(line.lstrip(" "))
    if indent > 3:
        return None
    after_marks = len(line) - len(line[indent:].lstrip("#"))
    level = after_marks - indent
    if not 1 <= level <= 6:
        return None
    rest = line[after_marks:]
    if not rest:
        return level, ""
    if rest[0] not in " \t":
        return None
    title = rest.lstrip(" \t").rstrip(" \t")
    without_closing = title.rstrip("#")
    if without_closing != title and without_closing[-1:] in (" ", "\t"):
        title = without_closing.rstrip(" \t")
    return level, title


def line_spans(text: str) -> Iterator[tuple[int, int]]:
    position = 0
    while position < len(text):
        newline = text.find("\n", position)
        end = len(text) if newline < 0 else newline
        yield position, end - 1 if end > position and text[end - 1] == "\r" else end
        position = end + 1


def line_spans_within(text: str, start: int, end: int) -> list[tuple[int, int]]:
    lines: list[tuple[int, int]] = []
    for line_start, line_end in line_spans(text[start:end]):
        s, e = trim_span(text, start + line_start, start + line_end)
        if s < e:
            lines.append((s, e))
    return lines
