"""Content words (stemmed, stopwords out) and the share of one text's words another one holds."""

from __future__ import annotations

import re
from collections.abc import Sequence

from gyre_runtime.vectorstore.bm25 import ENGLISH_STOPWORDS

# Function words (BM25's English list) and a few more that say nothing about support.
STOPWORDS = ENGLISH_STOPWORDS | frozenset(
    """
    also just may might must would could shall cannot us e.g i.e eg ie etc via yes however thus
    therefore within without upon onto among whether either neither yet still even already always
    often many much every another something anything everything
    """.split()
)
# A word, or an identifier kept whole: os.getcwd, --flag, snake_case, event-driven, 3.11.
_TOKEN = re.compile(r"(?:(?<![\w-])--?)?\w+(?:[.\-]\w+)*")
_PART = re.compile(r"[^\W_]+")
_VOWEL = re.compile(r"[aeiouy]")
_KEEP_S = ("ss", "us", "is")


def _strip_verb_suffix(word: str) -> str:
    """-ing and -ed off, when what is left has a vowel ("string" stays, "need" stays, "stored" -> "stor")."""
    for _ in range(2):  # "embedding" -> "embedd" -> "embed" -> "emb", as "embeds" and "embed" become
        if word.endswith("ied") and len(word) > 4:
            return word[:-3] + "y"
        if word.endswith("ing") and len(word) >= 5 and _VOWEL.search(word[:-3]):
            word = word[:-3]
        elif word.endswith("ed") and not word.endswith("eed") and len(word) >= 4 and _VOWEL.search(word[:-2]):
            word = word[:-2]
        else:
            return word
        if len(word) >= 3 and word[-1] == word[-2] and word[-1] not in "aeiouylsz":
            word = word[:-1]  # "running" -> "runn" -> "run"
    return word


def stem(word: str) -> str:
    """A light English stem, the same for "store", "stores", "stored" and "storing" ("stor")."""
    if not word.isalpha() or len(word) <= 2:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith("sses") or word.endswith(("ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(_KEEP_S) and len(word) > 3:
        word = word[:-1]
    word = _strip_verb_suffix(word)
    if word.endswith("e") and len(word) >= 3:
        word = word[:-1]  # "store" and "stored" both end up "stor"
    return word


def content_tokens(text: str) -> list[str]:
    """Lowercased, stemmed content words of ``text`` in order; an identifier counts whole and by its parts."""
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.lower()):
        token = match.group()
        parts = _PART.findall(token)
        if len(parts) > 1 or token.startswith("-") or "_" in token:
            if all(part.isdigit() for part in parts):
                tokens.append(token)  # a version or decimal: "3.11" is one fact, not "3" and "11"
                continue
            if token.strip("-") not in STOPWORDS:
                tokens.append(token)  # the identifier itself, unstemmed, then its parts
        tokens.extend(stem(part) for part in parts if part not in STOPWORDS and (len(part) > 1 or part.isdigit()))
    return tokens


def lexical_support(claim: str, evidence: str) -> float:
    """The share (0..1) of ``claim``'s distinct content tokens found in ``evidence``; 0.0 for a claim without any."""
    claimed = set(content_tokens(claim))
    if not claimed:
        return 0.0
    return len(claimed & set(content_tokens(evidence))) / len(claimed)


# --- does the retrieved text speak of what the question asks? --------------------------------------

# Words that say how a question is asked, not what it is about ("what does the documentation say
# about X?"): left out when checking that the sources mention what the question names.
QUESTION_WORDS = frozenset(
    content_tokens(
        "documentation docs document say says said tell explain describe mean means meaning stand stands "
        "provide provides used use using purpose work works happen happens way ways option command function "
        "method module class example"
    )
)


def question_coverage(question: str, texts: Sequence[str]) -> float:
    """Share (0..1) of what the question names (its content words less QUESTION_WORDS) that ``texts`` mention.

    A question about something no retrieved passage mentions ("What does PYTHONSTARTUP do?" over
    pages that never name it) is not answered by them, however close their embeddings are. 1.0 for
    a question with nothing to look for.
    """
    wanted = set(content_tokens(question)) - QUESTION_WORDS
    if not wanted:
        return 1.0
    present = set(content_tokens(" ".join(texts)))
    return len(wanted & present) / len(wanted)
