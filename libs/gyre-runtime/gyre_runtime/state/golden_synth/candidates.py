"""Answerable question candidates: definitions, option and signature descriptions, manual-page
summaries and section headings, each with its reference sentence and the words an answer must name."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gyre_runtime.state.golden_synth.corpus import CorpusStatistics, SourceChunk
from gyre_runtime.state.golden_synth.text import (
    DEPENDENT_STARTS,
    GENERIC_WORDS,
    SECTION_NUMBER,
    STOP_WORDS,
    TERM,
    WORD,
    prose_paragraphs,
    split_sentences,
    usable_sentence,
)

MAX_SUBJECT_WORDS = 6
_GENERIC_HEADINGS = frozenset(
    """name synopsis description options examples example notes note see also bugs author authors
    configuration discussion introduction overview summary functions classes constants exceptions usage
    details reference""".split()
)
_DEFINITION = re.compile(
    r"^(?P<subject>[A-Za-z_][\w.()\-' ]*?)\s+(?P<verb>is|are)\s+(?P<rest>(?:a|an|the|one of)\s.+)$"
)
_ACTION = re.compile(r"^(?P<subject>[A-Za-z_][\w.()\-' ]*?)\s+(?P<verb>returns|provides)\s+(?P<rest>.+)$")
_SIGNATURE = re.compile(r"^(?P<name>[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\(.{0,80}\)$")
_OPTION_LINE = re.compile(r"-{1,2}[A-Za-z0-9][^\n]{0,80}")
_OPTION_NAME = re.compile(r"(?<![\w-])--?[A-Za-z0-9][\w-]*")
_NAME_LINE = re.compile(r"(?P<name>[\w.+-]{2,40}) - (?P<summary>[^\n]{10,200})")
_RETURN_SENTENCE = re.compile(r"^Returns?\s+(?P<rest>.+)$")


@dataclass(frozen=True)
class Candidate:
    """A question, the sentence that answers it, its one document, and the terms a right answer names."""

    kind: str
    document_id: str
    question: str
    reference: str
    terms: tuple[str, ...]


def answerable_candidates(chunks: Sequence[SourceChunk], statistics: CorpusStatistics) -> list[Candidate]:
    candidates: list[Candidate] = []
    seen_sections: set[tuple[str, tuple[str, ...]]] = set()
    for chunk in chunks:
        paragraphs = list(prose_paragraphs(chunk.text))
        candidates.extend(_definitions(chunk, paragraphs, statistics))
        section = (chunk.document_id, chunk.heading_path)
        if section not in seen_sections:  # only a section's first chunk holds its first sentence
            seen_sections.add(section)
            heading = _heading_candidate(chunk, paragraphs, statistics)
            if heading is not None:
                candidates.append(heading)
    # A question or a reference found in two documents has no single right source: no copy is kept.
    sources: dict[str, set[str]] = defaultdict(set)
    for candidate in candidates:
        sources[candidate.question.lower()].add(candidate.document_id)
        sources[candidate.reference.lower()].add(candidate.document_id)
    kept: list[Candidate] = []
    taken: set[str] = set()
    for candidate in candidates:
        key = candidate.question.lower()
        if len(sources[key]) == 1 and len(sources[candidate.reference.lower()]) == 1 and key not in taken:
            taken.add(key)
            kept.append(candidate)
    return kept


def _definitions(chunk: SourceChunk, paragraphs: list[str], statistics: CorpusStatistics) -> Iterator[Candidate]:
    if chunk.heading_path and chunk.heading_path[-1].strip().lower() == "name":
        yield from _man_page_name(chunk, paragraphs, statistics)
        return
    previous = ""
    options: list[str] = []  # the option lines just before this paragraph: "-n", "--dry-run"
    for paragraph in paragraphs:
        sentences = split_sentences(paragraph)
        # A term line (an API signature, a command-line option) and the paragraph after it: its definition.
        signature = _SIGNATURE.fullmatch(previous) if "\n" not in previous else None
        option = _option_name(options)
        for position, sentence in enumerate(sentences):
            if not usable_sentence(sentence):
                continue
            question: str | None
            if position == 0 and signature is not None and _RETURN_SENTENCE.match(sentence):
                question = _in_context(f"what does {signature['name']}() return?", signature["name"], chunk.title)
            elif position == 0 and option is not None and sentence.split()[0].lower() not in DEPENDENT_STARTS:
                question = _in_context(f"what does the {option} option do?", option, chunk.title)
            else:
                question = _definition_question(sentence, chunk.title, statistics)
            if question is None:
                continue
            terms = _answer_terms(sentence, question, chunk.document_id, statistics)
            if terms:
                yield Candidate("definition", chunk.document_id, question, sentence, terms)
        options = [*options, paragraph] if "\n" not in paragraph and _OPTION_LINE.fullmatch(paragraph) else []
        previous = paragraph


def _option_name(lines: list[str]) -> str | None:
    """The first long name among option lines ("-A", "--all", "--no-ignore-removal": "--all"), else the first name."""
    names: list[str] = [name for line in lines for name in _OPTION_NAME.findall(line)]
    long_names = [name for name in names if name.startswith("--") and len(name) > 3]
    return (long_names or names)[0] if names else None


def _man_page_name(chunk: SourceChunk, paragraphs: list[str], statistics: CorpusStatistics) -> Iterator[Candidate]:
    """A manual page's NAME line, "git-stash - Stash the changes ...": what the named thing is for."""
    for paragraph in paragraphs[:1]:
        line = _NAME_LINE.fullmatch(paragraph)
        if line is None:
            continue
        question = f"What is {line['name']} used for?"
        terms = _answer_terms(line["summary"], question, chunk.document_id, statistics)
        if terms:
            yield Candidate("summary", chunk.document_id, question, paragraph, terms)


def _definition_question(sentence: str, title: str, statistics: CorpusStatistics) -> str | None:
    match = _DEFINITION.match(sentence) or _ACTION.match(sentence)
    if match is None:
        return None
    subject = match["subject"].strip()
    words = subject.split()
    if not 1 <= len(words) <= MAX_SUBJECT_WORDS or words[0].lower() in DEPENDENT_STARTS:
        return None
    if words[-1].lower() in STOP_WORDS or subject.count("(") != subject.count(")"):
        return None
    if not any(statistics.is_distinctive(word) for word in words):
        return None
    if words[0] in ("The", "A", "An"):
        words[0] = words[0].lower()
    subject = " ".join(words)
    verb = match["verb"]
    if verb == "returns":
        question = f"what does {subject} return?"
    elif verb == "provides":
        question = f"what does {subject} provide?"
    else:
        question = f"what {verb} {subject}?"
    return _in_context(question, subject, title)


def _in_context(question: str, subject: str, title: str) -> str:
    """The question, led by the page's short title when the subject alone could be many things.

    "What does options() return?" has an answer in every module with an options(); "In configparser,
    what does options() return?" has one. A dotted subject ("os.path.join") already says where.
    """
    short = _short_title(title)
    if "." in subject or not short or short.lower() in question.lower():
        return question[0].upper() + question[1:]
    return f"In {short}, {question}"


def _short_title(title: str) -> str:
    """A page title's first part without section numbers: "os.path — Common ... — Python 3.11" -> "os.path"."""
    first = SECTION_NUMBER.sub("", re.split(r"\s+[—–|]\s+|\(\d\)", title, maxsplit=1)[0]).strip()
    return first if 0 < len(first) <= 40 and len(first.split()) <= 4 else ""


def _heading_candidate(chunk: SourceChunk, paragraphs: list[str], statistics: CorpusStatistics) -> Candidate | None:
    if not chunk.heading_path:
        return None
    heading = SECTION_NUMBER.sub("", " ".join(chunk.heading_path[-1].split()))
    if heading.isupper():  # manual pages shout their headings; the question need not
        heading = heading.capitalize()
    if not 4 <= len(heading) <= 100 or heading.lower() in _GENERIC_HEADINGS:
        return None
    if " ".join(chunk.heading_path[-1].split()).lower() not in statistics.unique_headings:
        return None
    # A heading that asks a question (FAQ pages) is the question; others are asked about, on their page
    # when the heading is a common phrase ("Available Functions").
    if heading.endswith("?"):
        if len(heading.split()) < 4:
            return None
        question = heading
    elif any(statistics.is_distinctive(word) for word in heading.split()):
        question = f"What does the documentation say about {heading}?"
    else:
        question = _in_context(f"what does the documentation say about {heading}?", heading, chunk.title)
    for paragraph in paragraphs[:3]:
        sentences = split_sentences(paragraph)
        if sentences and usable_sentence(sentences[0]):
            terms = _answer_terms(sentences[0], question, chunk.document_id, statistics)
            return Candidate("heading", chunk.document_id, question, sentences[0], terms[:1]) if terms else None
    return None


def _answer_terms(
    reference: str, question: str, document_id: str, statistics: CorpusStatistics
) -> tuple[str, ...]:
    """1-2 words of the reference that the question lacks, the most telling in the document first."""
    asked = {word for word in WORD.findall(question.lower()) if len(word) >= 3}
    found: dict[str, str] = {}
    first_word = reference.split()[0] if reference.split() else ""
    for term in TERM.findall(reference):
        lower = term.lower()
        # A capital that only starts the sentence ("Turn on rename detection") looks rarer than it is.
        if term == first_word and term[1:].islower():
            continue
        if len(term) < 4 or lower in STOP_WORDS or lower in GENERIC_WORDS or lower in found:
            continue
        # "returned" answers "What does f return?" as little as "return" does: no shared stems either.
        if any(lower.startswith(word[:5]) or word.startswith(lower[:5]) for word in asked if len(word) >= 4):
            continue
        if any(part in asked for part in WORD.findall(lower)):
            continue
        found[lower] = term
    # Stable sort: equal weights keep the sentence's order.
    ranked = sorted(found, key=lambda lower: -max(statistics.weight(document_id, part) for part in lower.split("-")))
    wanted = 2 if len(ranked) >= 4 else 1
    return tuple(found[lower] for lower in ranked[:wanted])
