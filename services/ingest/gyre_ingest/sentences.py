"""Sentence spans of document text: where a sentence ends, abbreviations, initials and decimals aside."""

from __future__ import annotations

import re

# A period after one of these does not end a sentence (lower-case, without the period). "etc." is left
# out on purpose: it ends a sentence far more often than not when a capital follows.
_ABBREVIATIONS = frozenset(
    """mr mrs ms mx dr prof sr jr st mt rev gen col lt sgt capt gov sen rep hon
    vs cf al fig figs eq eqs no nos vol vols pp p ch sec art ed eds approx ca est dept univ
    inc ltd co corp bros jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun
    e.g i.e viz ex incl resp min max""".split()
)
_DOTTED = re.compile(r"[^\W\d_](?:\.[^\W\d_])+")  # "U.S", "e.g", "Ph.D" (not "3.14" or "example.com")
# A whole run of end punctuation (never from inside one), closing quotes or brackets, white space, then the next
# sentence's first character. Linear time: each attempt starts only at a run's first character and the possessive
# quantifiers never give back, so no character is scanned twice. (The word before the punctuation used to be a
# lazy ``(\S*?)`` here, which re-scanned a long run of non-space characters from every position in it: quadratic.)
_SENTENCE_END = re.compile(r"""(?<![.!?…])([.!?…]++)["'”’)\]]*+(\s++)(?=\S)""")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans in ``text[start:end]``, trimmed of surrounding whitespace.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes or brackets) followed by white
    space and a capital, digit, quote or bracket; a period after a known abbreviation ("Dr.", "e.g."),
    a single letter (initials) or a dotted word ("U.S.") does not end one, and decimals ("3.14") never do.
    """
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    sentence_start = start
    # Matched on the slice so that a run of punctuation just before ``start`` does not hide one starting at it.
    for match in _SENTENCE_END.finditer(text[start:end]):
        following = text[start + match.end()]
        if not (following.isupper() or following.isdigit() or following in "\"'“‘([¿¡"):
            continue
        if match.group(1) == "." and _is_abbreviation(_word_before(text, start, start + match.start())):
            continue
        _append_trimmed(text, sentence_start, start + match.start(2), spans)
        sentence_start = start + match.end()
    _append_trimmed(text, sentence_start, end, spans)
    return spans


def _word_before(text: str, start: int, position: int) -> str:
    """The non-space characters just before ``position`` (not before ``start``).

    Linear over a whole split: each match's word lies between the white space that ended the previous
    match and this match's punctuation, so no character is walked over twice.
    """
    word_start = position
    while word_start > start and not text[word_start - 1].isspace():
        word_start -= 1
    return text[word_start:position]


def _is_abbreviation(word: str) -> bool:
    word = word.lstrip("\"'“‘([")
    return (len(word) == 1 and word.isalpha()) or bool(_DOTTED.fullmatch(word)) or word.lower() in _ABBREVIATIONS


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    start, end = trim_span(text, start, end)
    if start < end:
        spans.append((start, end))


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
