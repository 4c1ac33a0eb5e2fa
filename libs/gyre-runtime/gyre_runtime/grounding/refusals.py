"""Whether an answer declines to answer: the configured no-answer text or what a small model says instead."""

from __future__ import annotations

import re

from gyre_runtime.grounding.citations import citation_numbers, strip_citations
from gyre_runtime.grounding.sentences import split_sentences

# Refusals that are not the configured no-answer text: what a small model says instead.
_REFUSAL_PATTERNS = (
    r"\bi (?:do not|don't|dont|did not|didn't) (?:know|find)\b",
    r"\bi(?:'m| am) (?:not sure|unable to|not able to)\b",
    r"\bi (?:cannot|can't|can not|could not|couldn't) (?:answer|find|say|tell|determine|help)\b",
    r"\b(?:sources?|documents?|context|passages?|information)(?: provided| given)? "
    r"(?:do not|don't|does not|doesn't|did not|didn't) (?:contain|mention|say|include|provide|answer|specify|cover)\b",
    r"\bthere (?:is|are) no (?:information|mention|details?|answer)\b",
    r"\bno (?:information|answer|details?) (?:is |was )?(?:available|provided|found|given)\b",
    r"\bnot (?:mentioned|covered|found|provided|specified|stated) in the (?:sources?|documents?|context)\b",
    r"\bnone of the (?:\w+ )?(?:documents|sources)\b",
)
_REFUSAL = re.compile("|".join(_REFUSAL_PATTERNS))
# The first clause of the no-answer text ("I don't know" of "I don't know: none of ...").
_CLAUSE_END = re.compile(r"[:;,.!?\u2014\u2013]|\s-\s")
_REFUSAL_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_REFUSAL_SPACES = re.compile(r"\s+")


def _normalize_refusal(text: str) -> str:
    text = strip_citations(text).translate(_REFUSAL_APOSTROPHES).lower()
    return _REFUSAL_SPACES.sub(" ", text).strip(" \t\n.!")


def is_refusal(answer: str, no_answer_text: str) -> bool:
    """Whether the answer declines to answer: the no-answer text, its first clause, or a common form.

    Beyond the exact no-answer text, only the first sentence is read, and only in an answer without
    citations: "I don't know the exact figure, but [1] gives 5" is a hedged answer, not a refusal.
    """
    normalized = _normalize_refusal(answer)
    if not normalized:
        return False
    if normalized == _normalize_refusal(no_answer_text):
        return True
    if citation_numbers(answer):
        return False
    sentences = split_sentences(answer)
    first = _normalize_refusal(sentences[0] if sentences else answer)
    clause = _CLAUSE_END.split(_normalize_refusal(no_answer_text), maxsplit=1)[0].strip()
    if clause and first.startswith(clause):
        return True
    return _REFUSAL.search(first) is not None
