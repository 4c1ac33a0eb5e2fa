"""How well the sources support each answer sentence: lexical overlap (optionally embedding cosine) and citations.

Each answer sentence's content words are looked for in one source sentence, or in two consecutive
ones; the sources a sentence cites must be ones that support it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from gyre_runtime.grounding.citations import citation_numbers, strip_citations
from gyre_runtime.grounding.lexical import content_tokens
from gyre_runtime.grounding.sentences import sentence_spans, split_sentences

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Rows are L2-normalised embeddings of the texts, one per text, in order.
Embed = Callable[[Sequence[str]], "npt.NDArray[Any]"]


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
