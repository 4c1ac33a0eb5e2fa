"""Answer and source text cut into sentences by rule, not by a model.

List markers and line breaks end sentences, a full stop does unless it belongs to an abbreviation
("e.g.", "i.e.", "Mr."), an initial or a list marker ("a.", "1."), or sits inside a word ("3.11",
"os.path.join()"). Citations written after a sentence's full stop ("... in Qdrant. [1]") belong to
that sentence.
"""

from __future__ import annotations

import re

from gyre_runtime.grounding.citations import CITATION_GROUP, CITATION_RUN, strip_citations

# A bullet, a number or letter with "." or ")", or a Markdown heading, at the start of a line.
LIST_MARKER = re.compile(r"[ \t]*(?:[-*+•‣◦–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\d{1,3}\)|\([A-Za-z]\)|#{1,6})[ \t]+")
_TERMINAL = re.compile(r"[.!?…]+")
_CLOSERS = re.compile(r"[\"'”’)]*")
_CITATIONS_AFTER = re.compile(rf"(?:\s*(?:{CITATION_GROUP}))*", re.IGNORECASE)
# What may start the next sentence after a full stop: a capital, a digit, an opening quote or bracket,
# Markdown, or a lowercase identifier as Python's docs begin sentences with ("os.chdir() changes ...").
_SENTENCE_START = re.compile(r"\s+(?:[A-Z0-9\"'“‘(\[`*_#]|[^\W\d_][\w]*(?:\.\w|\(|_\w))")
_ABBREVIATIONS = frozenset(
    """e.g i.e eg ie cf vs etc al approx resp mr mrs ms dr prof st jr sr inc ltd co no nos fig figs eq
    sec ch vol pp ca viz""".split()
) - {"etc"}  # "etc." followed by a capital ends a sentence far more often than not
_SPLIT_WORD = re.compile(r"[^\s(\[\"'“‘]+$")
# A line ending like this continues on the next line (the text was wrapped), unless that line is a new item.
_CONTINUES = re.compile(r"(?:[,;(\-–—]|\b(?:a|an|the|and|or|of|in|on|to|for|with|by|from|as|at|is|are|that))\Z")
_ENDS_SENTENCE = re.compile(rf"[.!?…:][\"'”’)]*(?:[ \t]*{CITATION_GROUP})*\Z", re.IGNORECASE)


def _is_split_point(block: str, stop: re.Match[str]) -> bool:
    """Whether the terminal punctuation ``stop`` ends a sentence (the next one starts right after)."""
    if stop.group().startswith(".") and len(stop.group()) == 1:
        word = _SPLIT_WORD.search(block, 0, stop.start())
        token = word.group().lower() if word else ""
        if len(token) == 1 or token in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)+[a-z]", token):
            return False
    return True


def _block_sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    begin = start
    position = start
    while True:
        stop = _TERMINAL.search(text, position, end)
        if stop is None:
            break
        after = _CLOSERS.match(text, stop.end(), end)
        after_end = after.end() if after else stop.end()
        cited = _CITATIONS_AFTER.match(text, after_end, end)
        sentence_end = cited.end() if cited else after_end
        position = max(sentence_end, stop.end())
        if sentence_end >= end:
            break
        if _is_split_point(text, stop) and _SENTENCE_START.match(text, sentence_end, end):
            spans.append((begin, sentence_end))
            begin = sentence_end
    spans.append((begin, end))
    return spans


def _blocks(text: str) -> list[tuple[int, int]]:
    """Spans of text that sentences never cross: paragraphs and list items, wrapped lines joined."""
    blocks: list[tuple[int, int]] = []
    previous_end = 0
    for line in re.finditer(r"[^\n]+", text):
        line_start, line_end = line.span()
        marker = LIST_MARKER.match(text, line_start, line_end)
        content_start = marker.end() if marker else line_start
        while content_start < line_end and text[content_start].isspace():
            content_start += 1
        content_end = line_end
        while content_end > content_start and text[content_end - 1].isspace():
            content_end -= 1
        if content_start == content_end:
            continue
        paragraph_break = bool(blocks) and text.count("\n", previous_end, line_start) > 1
        content = text[content_start:content_end]
        if blocks and not paragraph_break and not marker:
            last_start, last_end = blocks[-1]
            last = text[last_start:last_end]
            only_citations = CITATION_RUN.fullmatch(content) is not None
            wrapped = not _ENDS_SENTENCE.search(last) and (
                _CONTINUES.search(last.lower()) is not None or content[0].islower()
            )
            if only_citations or wrapped:
                blocks[-1] = (last_start, content_end)
                previous_end = line_end
                continue
        blocks.append((content_start, content_end))
        previous_end = line_end
    return blocks


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of ``text``'s sentences, list markers and surrounding blanks left out."""
    spans: list[tuple[int, int]] = []
    for block_start, block_end in _blocks(text):
        for start, end in _block_sentences(text, block_start, block_end):
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if re.search(r"\w", strip_citations(text[start:end])):
                spans.append((start, end))
    return spans


def split_sentences(text: str) -> list[str]:
    """``text``'s sentences, whitespace-normalised, in order; list markers and empty pieces left out."""
    return [" ".join(text[start:end].split()) for start, end in sentence_spans(text)]
