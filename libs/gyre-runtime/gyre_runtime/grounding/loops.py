"""Where a small model's answer starts repeating itself, so a streaming caller can cut it there."""

from __future__ import annotations

import re
from itertools import pairwise

from gyre_runtime.grounding.citations import strip_citations
from gyre_runtime.grounding.sentences import LIST_MARKER, sentence_spans

# A loop's cycle longer than this many words is left to the repeated-sentence and n-gram rules.
_MAX_PERIOD = 60
# In a looping tail, at least this share of the n-grams after the first cycle repeat ones before them.
_LOOP_REPEATED_SHARE = 0.6
_PLACEHOLDER = "#"  # list markers and numbers ("a.", "1.", "2.") vary between cycles of a loop


def _loop_words(text: str) -> tuple[list[str], list[int]]:
    words: list[str] = []
    starts: list[int] = []
    for match in re.finditer(r"\w+", text):
        word = match.group().lower()
        words.append(_PLACEHOLDER if len(word) == 1 or word.isdigit() else word)
        starts.append(match.start())
    return words, starts


def _tandem_loop(words: list[str], n: int, min_repeats: int) -> int | None:
    """Word index where the second copy starts of a block repeated back to back min_repeats times
    over at least 2n words ("a. Document storage a. Document storage a. Document storage")."""
    earliest: int | None = None
    for period in range(1, min(_MAX_PERIOD, len(words) // min_repeats) + 1):
        run = 0  # words[j] == words[j - period] for the last `run` positions
        for j in range(period, len(words)):
            if words[j] != words[j - period]:
                run = 0
                continue
            run += 1
            length = run + period
            if length >= period * min_repeats and length >= 2 * n:
                start = j - length + 1
                if any(word != _PLACEHOLDER for word in words[start : start + period]):
                    cut = start + period
                    earliest = cut if earliest is None else min(earliest, cut)
                    break
    return earliest


def _repeated_sentence(text: str, min_repeats: int) -> int | None:
    """Offset of the second copy of a sentence or line (3+ words) that occurs min_repeats times or more."""
    lines = [line.span() for line in re.finditer(r"[^\n]+", text)]
    earliest: int | None = None
    for pieces in (sentence_spans(text), lines):  # counted apart: a one-sentence line is not two copies
        seen: dict[tuple[str, ...], list[int]] = {}
        for start, end in pieces:
            key = tuple(_loop_words(strip_citations(text[start:end]))[0])
            if len(key) < 3 or all(word == _PLACEHOLDER for word in key):
                continue
            offsets = seen.setdefault(key, [])
            offsets.append(start)
            if len(offsets) == min_repeats:
                earliest = offsets[1] if earliest is None else min(earliest, offsets[1])
    return earliest


def _ngram_tail_loop(words: list[str], n: int, min_repeats: int) -> int | None:
    """Word index of the second occurrence of an n-gram seen min_repeats times (not overlapping), when
    the text runs on repeating itself to its end: the last occurrence is within a cycle of the end, and
    most n-grams from the second occurrence on repeat earlier ones (a loop with small variations)."""
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    occurrences: dict[tuple[str, ...], list[int]] = {}
    for i, gram in enumerate(grams):
        places = occurrences.setdefault(gram, [])
        if not places or i >= places[-1] + n:
            places.append(i)
    candidates = sorted(
        (places for gram, places in occurrences.items() if len(places) >= min_repeats and set(gram) != {_PLACEHOLDER}),
        key=lambda places: places[1],
    )
    for places in candidates:
        cycle = max(b - a for a, b in pairwise(places))
        if len(grams) - 1 - places[-1] > cycle:
            continue
        seen = set(grams[places[0] : places[1]])
        repeated = 0
        for gram in grams[places[1] :]:
            repeated += gram in seen
            seen.add(gram)
        if repeated / len(grams[places[1] :]) >= _LOOP_REPEATED_SHARE:
            return places[1]
    return None


def loop_start(text: str, *, n: int = 4, min_repeats: int = 3) -> int | None:
    """Character offset where ``text`` starts looping (its first cycle kept), or None when it does not.

    A loop is a block of words repeated back to back ``min_repeats`` times over at least 2n words, a
    sentence or line of 3+ words occurring ``min_repeats`` times, or a tail where an n-gram recurs
    ``min_repeats`` times and most of the text after its first occurrence repeats what came before.
    List markers and numbers are ignored when comparing, so "1. X 2. X 3. X" loops like "X X X". The
    offset is never 0: the first copy is kept, so a streaming caller can cut the answer there.
    """
    words, starts = _loop_words(text)
    found: list[int] = []
    tandem = _tandem_loop(words, n, min_repeats)
    if tandem is not None:
        found.append(starts[tandem])
    sentence = _repeated_sentence(text, min_repeats)
    if sentence is not None:
        found.append(sentence)
    tail = _ngram_tail_loop(words, n, min_repeats)
    if tail is not None:
        found.append(starts[tail])
    if not found:
        return None
    start = min(found)
    line_start = text.rfind("\n", 0, start) + 1
    if line_start and LIST_MARKER.fullmatch(text, line_start, start):
        return line_start  # the repeated item's list marker goes with it
    return start


def repetition_loop(text: str, *, n: int = 4, min_repeats: int = 3) -> bool:
    """Whether ``text`` has started repeating itself (see ``loop_start``)."""
    return loop_start(text, n=n, min_repeats=min_repeats) is not None
