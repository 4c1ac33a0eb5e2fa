"""Per-item answer-quality figures without an LLM judge, and their aggregation into a run's metrics.

Every figure is computed from plain values: the golden item (question, reference answer, must-include
terms, relevant ids, answerable), what the pipeline returned (answer, finish reason, retrieved hits,
cited sources) and its costs. A figure that does not apply to an item is ``None`` (correctness on an
unanswerable item, retrieval on an item without labels), and each run metric is averaged only over
the items where its figure applies. ``METRICS`` is the one table of the run metrics: their meaning,
direction, the per-item figure each comes from and how it is summarised; comparison, gate and
report all read it.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

import msgspec
import numpy as np

from gyre_contracts.evaluate import METRICS
from gyre_runtime.grounding import (
    Embed,
    is_refusal,
    repetition_loop,
    sentence_support,
    strip_citations,
)

# "share": the mean of a pass/fail figure (pass = 1), compared with McNemar's test.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_ARTICLES = re.compile(r"\b(?:a|an|the)\b")
_WHITESPACE = re.compile(r"\s+")


# --- retrieval -----------------------------------------------------------------------------------


def hit_labels(hits: Sequence[tuple[str, str]], relevant: Collection[str]) -> list[str | None]:
    """The relevant label each ranked (document_id, chunk_id) hit satisfies, ``None`` for the others.

    A label may be a chunk id or a document id, so a hit matches by either. Each label is satisfied
    once, at its first rank: a relevant document retrieved as three chunks counts once, and its
    later chunks stay in the ranking as non-relevant hits, so the ranks of the other hits do not move.
    """
    wanted = set(relevant)
    found: set[str] = set()
    labels: list[str | None] = []
    for document_id, chunk_id in hits:
        label = next((x for x in (chunk_id, document_id) if x in wanted and x not in found), None)
        if label is not None:
            found.add(label)
        labels.append(label)
    return labels


def _relevant_ranks(ranked_ids: Sequence[str | None], relevant: Collection[str], k: int) -> list[int]:
    """0-based ranks in the top ``k`` of the first occurrence of each relevant id."""
    if not relevant:
        raise ValueError("no relevant ids: retrieval metrics do not apply")
    if k < 1:
        raise ValueError(f"k must be positive, not {k}")
    wanted = set(relevant)
    seen: set[str] = set()
    ranks: list[int] = []
    for rank, ranked_id in enumerate(ranked_ids[:k]):
        if ranked_id is not None and ranked_id in wanted and ranked_id not in seen:
            seen.add(ranked_id)
            ranks.append(rank)
    return ranks


def recall_at_k(ranked_ids: Sequence[str | None], relevant: Collection[str], k: int) -> float:
    """Share of the relevant ids among the top ``k`` ranked ids (a repeated id counts once)."""
    return len(_relevant_ranks(ranked_ids, relevant, k)) / len(set(relevant))


def mrr_at_k(ranked_ids: Sequence[str | None], relevant: Collection[str], k: int = 10) -> float:
    """Reciprocal of the 1-based rank of the first relevant id in the top ``k``; 0 when none is there."""
    ranks = _relevant_ranks(ranked_ids, relevant, k)
    return 1.0 / (ranks[0] + 1) if ranks else 0.0


def ndcg_at_k(ranked_ids: Sequence[str | None], relevant: Collection[str], k: int = 10) -> float:
    """nDCG of the top ``k`` with binary gains: 1 at the first occurrence of each relevant id."""
    ranks = _relevant_ranks(ranked_ids, relevant, k)
    dcg = sum(1.0 / math.log2(rank + 2) for rank in ranks)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(set(relevant)), k)))
    return dcg / ideal


# --- correctness ---------------------------------------------------------------------------------


def _term_pattern(term: str) -> re.Pattern[str]:
    # \b fails next to punctuation ("os.getcwd()" ends in a non-word character, so \b after it only
    # matches before a word character): lookarounds on \w say "not inside a word" on both sides.
    body = r"\s+".join(re.escape(word) for word in term.split())
    return re.compile(rf"(?<!\w){body}(?!\w)", re.IGNORECASE)


def term_present(answer: str, term: str) -> bool:
    """Whether any "|"-separated alternative of ``term`` occurs in ``answer`` as whole words."""
    text = answer.translate(_APOSTROPHES)
    alternatives = [alt.strip().translate(_APOSTROPHES) for alt in term.split("|")]
    return any(_term_pattern(alt).search(text) for alt in alternatives if alt)


def must_include_pass(answer: str, must_include: Sequence[str]) -> bool | None:
    """Whether every must-include term occurs in the answer; ``None`` when there are no terms."""
    terms = [term for term in must_include if term.strip(" |")]
    if not terms:
        return None
    return all(term_present(answer, term) for term in terms)


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def normalize_tokens(text: str) -> list[str]:
    """SQuAD normalisation: citations dropped, lowercased, punctuation and articles removed, split."""
    text = strip_citations(text).lower()
    text = "".join(char for char in text if not _is_punctuation(char))
    return _ARTICLES.sub(" ", text).split()


def token_f1(answer: str, reference: str) -> float:
    """SQuAD token F1 of the answer against the reference."""
    predicted, gold = normalize_tokens(answer), normalize_tokens(reference)
    if not predicted or not gold:
        # SQuAD's convention: two empty texts agree, an empty one against a non-empty one does not.
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    previous = [0] * (len(b) + 1)
    for token in a:
        current = [0]
        for j, other in enumerate(b):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(answer: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common token subsequence, over the SQuAD-normalised tokens."""
    predicted, gold = normalize_tokens(answer), normalize_tokens(reference)
    if not predicted or not gold:
        return float(predicted == gold)
    lcs = _lcs_length(predicted, gold)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(gold)
    return 2 * precision * recall / (precision + recall)


def embedding_similarity(answer: str, reference: str, embed: Embed) -> float:
    """Cosine similarity of the answer (citations dropped) and reference embeddings."""
    vectors = np.asarray(embed([strip_citations(answer), reference]), dtype=np.float64)
    # Renormalised anyway: a cosine outside [-1, 1] from a slightly off embedder would skew means.
    norms = np.linalg.norm(vectors, axis=1)
    if not np.all(norms > 0):
        return 0.0
    return float(np.clip(vectors[0] @ vectors[1] / (norms[0] * norms[1]), -1.0, 1.0))


# --- groundedness, refusal, degeneration ---------------------------------------------------------


def groundedness(
    answer: str, source_texts: Sequence[str], embed: Embed | None = None
) -> tuple[float | None, float | None]:
    """(share of answer sentences supported by the sources, share of citing sentences whose citations
    are valid); the first is ``None`` for an answer without sentences, the second when none cites.

    ``source_texts[i]`` is the text of source number ``i + 1``, the number answers cite it by.
    """
    supports = sentence_support(answer, list(source_texts), embed=embed)
    if not supports:
        return None, None
    supported = sum(support.supported for support in supports) / len(supports)
    validity = [support.citation_valid for support in supports if support.citation_valid is not None]
    return supported, (sum(validity) / len(validity) if validity else None)


def is_degenerate(
    answer: str, finish_reason: str | None, max_tokens: int | None, *, completion_tokens: int | None = None
) -> tuple[bool, bool]:
    """(stuck in a repetition loop, cut off by the token limit).

    "length" is the finish reason of a cut answer; without a finish reason, an answer that used
    the whole ``max_tokens`` budget is taken as cut.
    """
    if finish_reason is not None:
        cut = finish_reason == "length"
    else:
        cut = max_tokens is not None and completion_tokens is not None and completion_tokens >= max_tokens
    return repetition_loop(answer), cut


# --- per item ------------------------------------------------------------------------------------


class ItemScore(msgspec.Struct, frozen=True, kw_only=True):
    """Every figure of one golden item in one run; ``None`` where a figure does not apply."""

    item_id: str
    question: str
    answer: str
    reference: str | None
    must_include_terms: list[str]
    answerable: bool
    refused: bool
    recall_at_k: float | None
    mrr_at_10: float | None
    ndcg_at_10: float | None
    must_include: bool | None
    token_f1: float | None
    rouge_l: float | None
    embedding_similarity: float | None
    grounded_sentences: float | None
    citation_validity: float | None
    unanswerable_refused: bool | None
    answerable_refused: bool | None
    degenerate: bool
    cut_by_max_tokens: bool
    finish_reason: str | None
    ttft_ms: float | None
    total_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cpu_s: float | None


class Costs(msgspec.Struct, frozen=True, kw_only=True):
    """What an answer cost, as measured by the runner; ``None`` for what was not measured."""

    ttft_ms: float | None = None
    total_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cpu_s: float | None = None


def _source_texts(citations: Sequence[tuple[int, str, str, str]]) -> list[str]:
    """Texts indexed by source number - 1; a number the answer was not given has an empty text."""
    if not citations:
        return []
    texts = [""] * max(number for number, *_ in citations)
    for number, _document_id, _chunk_id, text in citations:
        if number >= 1:
            texts[number - 1] = text
    return texts


def score_item(
    *,
    item_id: str,
    question: str,
    answer: str,
    reference: str | None = None,
    must_include: Sequence[str] = (),
    relevant: Collection[str] = (),
    answerable: bool = True,
    finish_reason: str | None = None,
    max_tokens: int | None = None,
    hits: Sequence[tuple[str, str]] = (),
    citations: Sequence[tuple[int, str, str, str]] = (),
    no_answer_text: str = "",
    costs: Costs | None = None,
    embed: Embed | None = None,
    k: int = 10,
) -> ItemScore:
    """Scores one answer to one golden item.

    ``hits`` are the retrieved (document_id, chunk_id) pairs in rank order, ``citations`` the
    numbered sources the answer was given as (number, document_id, chunk_id, text), ``k`` the
    retrieval depth recall is measured at (the run's top_k). For an unanswerable item a refusal is
    the pass; for an answerable one a refusal fails every correctness figure.
    """
    costs = costs or Costs()
    refused = is_refusal(answer, no_answer_text)
    labels = hit_labels(hits, relevant) if relevant else []

    must_pass = must_include_pass(answer, must_include) if answerable else None
    if must_pass is not None and refused:
        must_pass = False  # a refusal fails even where it happens to hold the terms
    f1 = rouge = similarity = None
    if answerable and reference:
        # A refusal scores nothing, even where it shares words with the reference by chance.
        f1 = 0.0 if refused else token_f1(answer, reference)
        rouge = 0.0 if refused else rouge_l(answer, reference)
        if embed is not None:
            similarity = 0.0 if refused else embedding_similarity(answer, reference, embed)

    grounded: tuple[float | None, float | None] = (None, None)
    if not refused and answer.strip():
        grounded = groundedness(answer, _source_texts(citations), embed)
    looping, cut = is_degenerate(answer, finish_reason, max_tokens, completion_tokens=costs.completion_tokens)

    return ItemScore(
        item_id=item_id,
        question=question,
        answer=answer,
        reference=reference,
        must_include_terms=list(must_include),
        answerable=answerable,
        refused=refused,
        recall_at_k=recall_at_k(labels, relevant, k) if relevant else None,
        mrr_at_10=mrr_at_k(labels, relevant, 10) if relevant else None,
        ndcg_at_10=ndcg_at_k(labels, relevant, 10) if relevant else None,
        must_include=must_pass,
        token_f1=f1,
        rouge_l=rouge,
        embedding_similarity=similarity,
        grounded_sentences=grounded[0],
        citation_validity=grounded[1],
        unanswerable_refused=None if answerable else refused,
        answerable_refused=refused if answerable else None,
        degenerate=looping,
        cut_by_max_tokens=cut,
        finish_reason=finish_reason,
        ttft_ms=costs.ttft_ms,
        total_ms=costs.total_ms,
        prompt_tokens=costs.prompt_tokens,
        completion_tokens=costs.completion_tokens,
        cpu_s=costs.cpu_s,
    )


# --- the run -------------------------------------------------------------------------------------


def item_value(score: ItemScore, metric: str) -> float | None:
    """The per-item figure behind a run metric, as a number (a pass is 1.0); ``None`` where it does not
    apply or the metric is an item count."""
    spec = METRICS[metric]
    if not spec.field:
        return None
    value = getattr(score, spec.field)
    return None if value is None else float(value)


def summarize(metric: str, values: Sequence[float]) -> float:
    """A run metric from the per-item figures where it applies (not empty)."""
    percentile = METRICS[metric].percentile
    return float(np.mean(values) if percentile is None else np.percentile(values, percentile))


def item_count(metric: str, scores: Sequence[ItemScore]) -> int:
    """The value of an item-count metric ("items", "answerable_items", "unanswerable_items")."""
    if metric == "answerable_items":
        return sum(score.answerable for score in scores)
    if metric == "unanswerable_items":
        return sum(not score.answerable for score in scores)
    return len(scores)


def aggregate(scores: Iterable[ItemScore]) -> dict[str, float]:
    """The run's metrics, named as in ``METRICS``; a metric no item applies to is left out."""
    scores = list(scores)
    metrics: dict[str, float] = {}
    for name, spec in METRICS.items():
        if spec.statistic == "count":
            metrics[name] = float(item_count(name, scores))
            continue
        values = [value for score in scores if (value := item_value(score, name)) is not None]
        if values:
            metrics[name] = summarize(name, values)
    return metrics

