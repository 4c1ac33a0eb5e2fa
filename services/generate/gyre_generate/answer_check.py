"""The grounding check every generated answer passes before it is delivered: loops cut, unsupported sentences
dropped, citations corrected, and a quoted extractive answer when too little of the model's answer holds up.

The check is lexical (``gyre_runtime.grounding``): a sentence is supported when enough of its content
words are in one source sentence, or two consecutive ones. A kept sentence that cites a source which
does not support it is made to cite the one that does; numbers no source has are removed; and when
the kept sentences cite nothing at all, each run of them supported by one source gets that source's
citation, so a delivered answer always says where it comes from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from gyre_generate.selection import cited_sources, extractive_answer
from gyre_runtime.grounding import (
    QUESTION_WORDS,
    SentenceSupport,
    citation_numbers,
    content_tokens,
    filter_citations,
    loop_start,
    sentence_support,
    strip_citations,
)

Action = Literal["kept", "trimmed", "extractive", "none"]

# Lines a dropped sentence leaves behind with nothing but a list marker.
_BARE_MARKER_LINE = re.compile(r"^[ \t]*(?:[-*+•‣◦–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\d{1,3}\)|\([A-Za-z]\))?[ \t]*$")
_SENTENCE_TAIL = re.compile(r"[.!?…:;]*[\"'”’)]*$")


@dataclass(frozen=True)
class CheckedAnswer:
    text: str  # the answer to deliver
    # kept: all supported; trimmed: unsupported sentences (or a loop) dropped; extractive: fell back to
    # quoted source sentences; none: no sources to check against
    action: Action
    supported: int  # sentences supported, of the model's answer (after a loop is cut)
    total: int  # sentences checked
    cited: tuple[int, ...]  # source numbers the delivered text cites


def _cite(sentence: str, number: int) -> str:
    """``sentence`` citing ``number`` before its closing punctuation: "in Qdrant." -> "in Qdrant [1]."."""
    tail = _SENTENCE_TAIL.search(sentence)
    cut = tail.start() if tail else len(sentence)
    return f"{sentence[:cut].rstrip()} [{number}]{sentence[cut:]}"


def _corrected(sentence: str, support: SentenceSupport, sources: Sequence[str], lexical_threshold: float) -> str:
    """A supported sentence citing only sources that exist and at least one that supports it."""
    if not support.cited or support.citation_valid:
        return sentence
    existing = filter_citations(sentence, range(1, len(sources) + 1))
    if citation_numbers(existing):  # some cited sources exist: keep them if one of them supports it
        recheck = sentence_support(existing, sources, lexical_threshold=lexical_threshold)
        if recheck and recheck[0].citation_valid:
            return existing
    assert support.best_source is not None  # a supported sentence has a supporting source
    return _cite(strip_citations(sentence), support.best_source)


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    lines = [line for line in lines if line and not _BARE_MARKER_LINE.fullmatch(line)]
    return "\n".join(lines).strip()


def _rewrite(text: str, supports: Sequence[SentenceSupport], sources: Sequence[str], lexical_threshold: float) -> str:
    """``text`` without its unsupported sentences, citations corrected, its layout otherwise as it was."""
    kept = [support for support in supports if support.supported]
    cite_missing = not any(support.cited for support in kept)
    # The source of the next kept sentence: one citation per run of sentences from the same source.
    next_source = {id(support): later.best_source for support, later in pairwise(kept)}
    pieces: list[str] = []
    position = 0
    for support in supports:
        start, end = support.span
        pieces.append(text[position:start])
        position = end
        if not support.supported:
            while position < len(text) and text[position] in " \t":
                position += 1
            continue
        sentence = _corrected(text[start:end], support, sources, lexical_threshold)
        if cite_missing and support.best_source is not None and next_source.get(id(support)) != support.best_source:
            sentence = _cite(sentence, support.best_source)
        pieces.append(sentence)
    pieces.append(text[position:])
    return _tidy("".join(pieces))


_WORD = re.compile(r"[A-Za-z][A-Za-z_-]{3,}")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")


def _within_one_edit(a: str, b: str) -> bool:
    """Whether ``a`` becomes ``b`` by one insertion, deletion or substitution (both lowercase)."""
    if abs(len(a) - len(b)) > 1 or a == b:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = j = edits = 0
    while i < len(a) and j < len(b):
        if a[i] != b[j]:
            edits += 1
            if edits > 1:
                return False
            if len(a) == len(b):
                i += 1
            j += 1
            continue
        i += 1
        j += 1
    return edits + (len(b) - j) + (len(a) - i) <= 1


def repair_copied_words(answer: str, sources: Sequence[str]) -> str:
    """Words the model misspelled while copying them from the sources, spelled as the sources do.

    A tiny model copies rare words with a letter off ("Qdrent" for "Qdrant"). A word of five letters
    or more that no source has, one edit away from exactly one name in the sources (a word written
    with a capital, ``_`` or ``-``: proper names and identifiers, not plain English, where one letter
    makes another word) with the same first letter, is that name.
    """
    vocabulary: dict[str, str] = {}
    for source in sources:
        for word in _WORD.findall(source):
            vocabulary.setdefault(word.lower(), word)
    names = {lower: word for lower, word in vocabulary.items() if word[1:] != word[1:].lower() or word[0].isupper()
             or "_" in word or "-" in word}

    def repair(match: re.Match[str]) -> str:
        word = match.group(0)
        lower = word.lower()
        if len(word) < 5 or lower in vocabulary:
            return word
        near = [
            w for w in names
            if w[0] == lower[0] and _within_one_edit(lower, w) and w.rstrip("s") != lower.rstrip("s")
        ]
        return names[near[0]] if len(near) == 1 else word

    return _WORD.sub(repair, answer)


# How an answer is framed ("The answer is: ..."): says nothing of its own.
_FRAMING_WORDS = frozenset(content_tokens("answer answers question questions according source sources state states"))
_PART_SEPARATORS = re.compile(r"[-_.]+")


def _runaway_word(sentence: str) -> bool:
    """A "word" the model looped inside: "git-push-remote-fetch-remote-fetch-remote-" repeats its parts."""
    for word in sentence.split():
        parts = [part for part in _PART_SEPARATORS.split(word.lower()) if len(part) >= 3]
        if any(parts.count(part) >= 3 for part in set(parts)):
            return True
    return False


def _informative(support: SentenceSupport, question: str, sources: Sequence[str]) -> SentenceSupport:
    """``support``, unsupported when the sentence says nothing from its evidence beyond the question, holds
    a number no source has, or a word the model looped inside.

    "The answer is: the queue class implements a LIFO queue [1]." shares its words with the source
    because it shares them with the question: it answers nothing. "ERROR is 1" against a source saying
    40 has every word supported but the one that matters.
    """
    if not support.supported:
        return support
    sentence = strip_citations(support.sentence)
    # What the sentence adds to the question must come from the passage that supports it: "FileNotFoundError
    # is raised when the second argument of a division is zero" names an exception some other passage has.
    evidence_words = set(content_tokens(support.evidence))
    said = (set(content_tokens(sentence)) & evidence_words) - set(content_tokens(question))
    said -= QUESTION_WORDS | _FRAMING_WORDS
    numbers = set(_NUMBER.findall(sentence))
    known = set(_NUMBER.findall(" ".join(sources)))
    if not said or not numbers <= known or _runaway_word(sentence):
        return dataclasses.replace(support, supported=False)
    return support


def check_answer(
    question: str,
    answer: str,
    sources: Sequence[str],
    *,
    min_supported_share: float = 0.5,
    lexical_threshold: float = 0.6,
    titles: Sequence[str] = (),
) -> CheckedAnswer:
    """``answer`` checked against ``sources`` (numbered from 1 as in the prompt).

    A looping tail is cut first (its first cycle kept). Then each sentence with content words is
    checked (misspelled copies of source words repaired first; a sentence that only restates the
    question, or holds a number no source has, counts as unsupported): when fewer than
    ``min_supported_share`` of them are supported, or none, the answer is
    ``extractive_answer`` (``""`` when no source sentence shares a word with the question: the caller
    then says it does not know); otherwise the unsupported sentences are dropped.
    """
    cut = loop_start(answer)
    text = answer[:cut].rstrip() if cut is not None else answer.strip()
    if not sources:
        return CheckedAnswer(text, "none", 0, 0, ())
    text = repair_copied_words(text, sources)
    supports = [
        _informative(support, question, sources)
        for support in sentence_support(text, sources, lexical_threshold=lexical_threshold)
    ]
    supported = sum(support.supported for support in supports)
    total = len(supports)
    if supported == 0 or supported < min_supported_share * total:
        quoted, cited = extractive_answer(question, sources, titles=titles)
        return CheckedAnswer(quoted, "extractive", supported, total, cited)
    delivered = _rewrite(text, supports, sources, lexical_threshold)
    action: Action = "kept" if supported == total and cut is None else "trimmed"
    return CheckedAnswer(delivered, action, supported, total, cited_sources(delivered, len(sources)))
