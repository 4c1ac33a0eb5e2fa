"""Checking an answer against its sources without a model: sentences, citations, lexical support, loops.

A tiny model rambles, loops and invents. What is checked here is what can be checked cheaply and
deterministically: whether each answer sentence's content words (stemmed, stopwords out) are found in
one source sentence, or in two consecutive ones (optionally also their embedding cosine); whether the
sources a sentence cites are ones that support it; and whether the text has started repeating itself.

Sentences are split by rule, not by a model: list markers and line breaks end sentences, a full stop
does unless it belongs to an abbreviation ("e.g.", "i.e.", "Mr."), an initial or a list marker
("a.", "1."), or sits inside a word ("3.11", "os.path.join()"). Citations written after a sentence's
full stop ("... in Qdrant. [1]") belong to that sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from gyre_runtime.vectorstore.bm25 import ENGLISH_STOPWORDS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Rows are L2-normalised embeddings of the texts, one per text, in order.
Embed = Callable[[Sequence[str]], "npt.NDArray[Any]"]

# --- citations ---------------------------------------------------------------------------------

_CITED_NUMBER = r"(?:(?:source|src|doc(?:ument)?|ref)\s*#?\s*)?\d{1,4}"
_CITATION_GROUP = rf"\[\s*{_CITED_NUMBER}(?:\s*(?:[,;]|-|–|\band\b)\s*{_CITED_NUMBER})*\s*\]"
# A run of adjacent groups ("[1][3]"); one right after a word or a call is code ("argv[1]", "f()[0]").
CITATION_RUN = re.compile(rf"(?<![\w)\]])(?:{_CITATION_GROUP})+", re.IGNORECASE)
_GROUP = re.compile(_CITATION_GROUP, re.IGNORECASE)
_GROUP_ITEM_SEPARATOR = re.compile(r"\s*(?:[,;]|\band\b)\s*", re.IGNORECASE)
_RANGE = re.compile(r"\D*(\d+)\s*[-–]\s*\D*(\d+)")
# "[1-3]" means 1, 2, 3; a wider range is more likely a typo than a citation of twenty sources.
_MAX_RANGE = 20


def _group_numbers(group: str) -> list[int]:
    numbers: list[int] = []
    for item in _GROUP_ITEM_SEPARATOR.split(group.strip()[1:-1].strip()):
        ranged = _RANGE.fullmatch(item)
        if ranged:
            low, high = int(ranged.group(1)), int(ranged.group(2))
            numbers.extend(range(low, high + 1) if 0 <= high - low <= _MAX_RANGE else (low, high))
        else:
            digits = re.search(r"\d+", item)
            if digits:
                numbers.append(int(digits.group()))
    return numbers


def _run_numbers(run: str) -> list[int]:
    return [number for group in _GROUP.finditer(run) for number in _group_numbers(group.group())]


def citation_numbers(text: str) -> tuple[int, ...]:
    """The source numbers ``text`` cites ("[1]", "[2, 3]", "[1][3]", "[1-2]"), unique, in order of first citation."""
    seen: dict[int, None] = {}
    for run in CITATION_RUN.finditer(text):
        for number in _run_numbers(run.group()):
            seen.setdefault(number, None)
    return tuple(seen)


def _tidy(text: str) -> str:
    """Spaces left behind by removed citations: none doubled, none before closing punctuation."""
    text = re.sub(r"[ \t]{2,}", " ", text)
    return re.sub(r"[ \t]+([.,;:!?)])", r"\1", text).strip()


def strip_citations(text: str) -> str:
    """``text`` without its citation markers: "in Qdrant [1]." -> "in Qdrant."."""
    return _tidy(re.sub(rf"[ \t]*{CITATION_RUN.pattern}", "", text, flags=re.IGNORECASE))


def filter_citations(text: str, valid: Collection[int]) -> str:
    """``text`` citing only the numbers in ``valid``: other numbers go, and a citation left empty goes."""

    def keep(match: re.Match[str]) -> str:
        numbers = _run_numbers(match.group())
        if all(number in valid for number in numbers):
            return match.group()
        kept = list(dict.fromkeys(number for number in numbers if number in valid))
        return " [" + ", ".join(map(str, kept)) + "]" if kept else ""

    return _tidy(re.sub(rf"[ \t]*{CITATION_RUN.pattern}", keep, text, flags=re.IGNORECASE))


# --- sentences ---------------------------------------------------------------------------------

# A bullet, a number or letter with "." or ")", or a Markdown heading, at the start of a line.
_LIST_MARKER = re.compile(r"[ \t]*(?:[-*+•‣◦–—]|\d{1,3}[.)]|[A-Za-z][.)]|\(\d{1,3}\)|\([A-Za-z]\)|#{1,6})[ \t]+")
_TERMINAL = re.compile(r"[.!?…]+")
_CLOSERS = re.compile(r"[\"'”’)]*")
_CITATIONS_AFTER = re.compile(rf"(?:\s*(?:{_CITATION_GROUP}))*", re.IGNORECASE)
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
_ENDS_SENTENCE = re.compile(rf"[.!?…:][\"'”’)]*(?:[ \t]*{_CITATION_GROUP})*\Z", re.IGNORECASE)


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
        marker = _LIST_MARKER.match(text, line_start, line_end)
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


# --- content tokens ----------------------------------------------------------------------------

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


# --- support of answer sentences ---------------------------------------------------------------


@dataclass(frozen=True)
class SentenceSupport:
    sentence: str  # as it appears in the answer (citations included), whitespace-normalised
    cited: tuple[int, ...]  # [n] numbers in this sentence
    best_source: int | None  # 1-based number of the best supporting source, None if no sources
    evidence: str  # the best supporting source sentence (or two consecutive ones)
    lexical: float  # lexical_support against that evidence
    semantic: float | None  # cosine to that evidence when embed given, else None
    supported: bool  # lexical >= lexical_threshold or semantic >= semantic_threshold
    citation_valid: bool | None  # None: cites nothing; else every cited n exists and one of them supports it
    span: tuple[int, int] = (0, 0)  # where the sentence is in the answer, for callers that edit the answer


@dataclass(frozen=True)
class _Evidence:
    source: int  # 1-based
    text: str
    tokens: frozenset[str]


def _evidence_units(sources: Sequence[str]) -> list[_Evidence]:
    """Every source sentence, then every two consecutive ones (a claim may join a label and its description)."""
    units: list[_Evidence] = []
    for number, source in enumerate(sources, start=1):
        sentences = split_sentences(source)
        tokens = [frozenset(content_tokens(sentence)) for sentence in sentences]
        units.extend(_Evidence(number, sentence, words) for sentence, words in zip(sentences, tokens, strict=True))
        units.extend(
            _Evidence(number, f"{first} {second}", tokens[i] | tokens[i + 1])
            for i, (first, second) in enumerate(pairwise(sentences))
        )
    return units


def _cosines(embed: Embed, claims: Sequence[str], units: Sequence[_Evidence]) -> npt.NDArray[np.floating[Any]]:
    vectors = embed([*claims, *(unit.text for unit in units)])
    norms = (vectors * vectors).sum(axis=1, keepdims=True) ** 0.5
    vectors = vectors / (norms + (norms == 0))  # callers promise unit rows; a zero row stays zero
    similarity: npt.NDArray[np.floating[Any]] = vectors[: len(claims)] @ vectors[len(claims) :].T
    return similarity


def sentence_support(
    answer: str,
    sources: Sequence[str],
    *,
    embed: Embed | None = None,
    lexical_threshold: float = 0.6,
    semantic_threshold: float = 0.75,
) -> list[SentenceSupport]:
    """How well the sources support each sentence of ``answer`` that has content words.

    The evidence for a sentence is the source sentence, or pair of consecutive source sentences, over
    all sources, that supports it best: highest margin over its threshold (lexical or semantic),
    the earlier source and the single sentence on ties.
    """
    spans = [
        (span, sentence, claim, claimed)
        for span in sentence_spans(answer)
        for sentence in [" ".join(answer[span[0] : span[1]].split())]
        for claim in [strip_citations(sentence)]
        for claimed in [frozenset(content_tokens(claim))]
        if claimed
    ]
    units = _evidence_units(sources)
    cosines = _cosines(embed, [claim for _, _, claim, _ in spans], units) if embed and spans and units else None

    def margin(lexical: float, semantic: float | None) -> float:
        lexical_margin = lexical - lexical_threshold
        return lexical_margin if semantic is None else max(lexical_margin, semantic - semantic_threshold)

    results: list[SentenceSupport] = []
    for row, (span, sentence, _, claimed) in enumerate(spans):
        cited = citation_numbers(sentence)
        lexicals = [len(claimed & unit.tokens) / len(claimed) for unit in units]
        semantics: list[float | None] = (
            [float(value) for value in cosines[row]] if cosines is not None else [None] * len(units)
        )
        margins = [margin(lexical, semantic) for lexical, semantic in zip(lexicals, semantics, strict=True)]
        if not units:
            results.append(SentenceSupport(sentence, cited, None, "", 0.0, None, False, False if cited else None, span))
            continue
        best = max(range(len(units)), key=lambda i: (margins[i], -i))
        citation_valid: bool | None = None
        if cited:
            citation_valid = all(1 <= number <= len(sources) for number in cited) and any(
                margins[i] >= 0 for i, unit in enumerate(units) if unit.source in cited
            )
        results.append(
            SentenceSupport(
                sentence=sentence,
                cited=cited,
                best_source=units[best].source,
                evidence=units[best].text,
                lexical=lexicals[best],
                semantic=semantics[best],
                supported=margins[best] >= 0,
                citation_valid=citation_valid,
                span=span,
            )
        )
    return results


# --- loops -------------------------------------------------------------------------------------

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
    if line_start and _LIST_MARKER.fullmatch(text, line_start, start):
        return line_start  # the repeated item's list marker goes with it
    return start


def repetition_loop(text: str, *, n: int = 4, min_repeats: int = 3) -> bool:
    """Whether ``text`` has started repeating itself (see ``loop_start``)."""
    return loop_start(text, n=n, min_repeats=min_repeats) is not None


# --- refusals ---------------------------------------------------------------------------------

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
