"""Prose out of chunk text for the question generator: paragraphs, sentences, words, and which
sentences can stand alone as a reference answer."""

from __future__ import annotations

import re
from collections.abc import Iterator

# Sentences outside these bounds are fragments, or too long to be one short answer.
MIN_SENTENCE_CHARS = 40
MAX_SENTENCE_CHARS = 300

STOP_WORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing done down during each either else even ever every few for
    from further had has have having he her here hers herself him himself his how i if in into is it its itself
    just least less may me might more most much must my myself neither no nor not now of off on once one only
    or other others our ours ourselves out over own same shall she should since so some such than that the
    their theirs them themselves then there these they this those through thus to too under until up upon us
    very was we were what when where whether which while who whom whose why will with within without would
    yet you your yours yourself yourselves""".split()
)
# Words too general to show that an answer knows the fact, whatever their frequency.
GENERIC_WORDS = frozenset(
    """return returns returned returning value values object objects function functions method methods class
    classes module modules argument arguments parameter parameters default defaults used using use uses given
    following specified specific provide provides provided example examples instance instances type types
    case cases number numbers string strings name names data list lists item items result results called
    call calls true false none option options command commands file files also like well need needs
    different various several possible usually always often never same new first last many made make makes
    within without whether other another each every except effect know known work works appropriate describes
    describe sometimes already still rather instead simply actually otherwise currently""".split()
)
# A sentence starting with one of these leans on the sentence before it.
DEPENDENT_STARTS = frozenset(
    """it this that these those there here which what who whose each all both one some such if when while
    however also otherwise thus then so but and or however instead see note for in on at by with as""".split()
)

WORD = re.compile(r"[a-z0-9]+")
# Words, hyphenated ones whole; not the stem of a contraction ("haven" of "haven't").
TERM = re.compile(r"(?<![\w'’-])[A-Za-z][A-Za-z-]*[A-Za-z](?![\w'’-])")
SECTION_NUMBER = re.compile(r"^(?:\d+\.)+\d*\s+|^\d+\s+")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(`])")
_ABBREVIATION_END = re.compile(r"\b(?:e\.g|i\.e|etc|vs|cf|approx|incl|resp|Mr|Dr|No|[A-Z])\.$")
_LIST_MARKER = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
CODE_TOKEN = re.compile(r"\w[._]\w|\w\(\)|^--?\w|[a-z][A-Z]|^[A-Z]{2,}$")
# A sentence that points at text around it ("listed below") says nothing on its own.
_POINTS_ELSEWHERE = re.compile(r"\b(?:below|above|following|as follows|this section|previous section)\b", re.I)
_CODE_MARKS = re.compile(r"```|>>>|[{};\\]|==|=>|->|\$\s|\s[=<>]\s")


def prose_paragraphs(text: str) -> Iterator[str]:
    """Blank-line separated paragraphs without fenced code and heading lines, list markers stripped."""
    in_fence = False
    lines: list[str] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            lines = []
            continue
        if in_fence:
            continue
        if not stripped or stripped.startswith("#"):
            if lines:
                yield "\n".join(lines)
            lines = []
            continue
        lines.append(_LIST_MARKER.sub("", line).strip())


def split_sentences(paragraph: str) -> list[str]:
    pieces = _SENTENCE_BREAK.split(" ".join(paragraph.split()))
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION_END.search(sentences[-1]):
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def usable_sentence(sentence: str) -> bool:
    # A question or an exclamation is no reference answer.
    if not MIN_SENTENCE_CHARS <= len(sentence) <= MAX_SENTENCE_CHARS or not sentence.endswith("."):
        return False
    if _CODE_MARKS.search(sentence) or _POINTS_ELSEWHERE.search(sentence):
        return False
    # Prose is mostly letters; a sentence thick with symbols is code or a table row.
    symbols = sum(1 for char in sentence if not (char.isalnum() or char.isspace() or char in ".,:'\"()-"))
    return symbols <= len(sentence) * 0.05
