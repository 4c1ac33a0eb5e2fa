"""Evaluation item scores built by hand, for the tests of comparing and reporting evaluation runs."""

from __future__ import annotations

import msgspec

from gyre_evaluate.metrics import ItemScore

FIGURES = (
    "reference", "recall_at_k", "mrr_at_10", "ndcg_at_10", "must_include", "token_f1", "rouge_l",
    "embedding_similarity", "grounded_sentences", "citation_validity", "unanswerable_refused",
    "answerable_refused", "finish_reason", "ttft_ms", "total_ms", "prompt_tokens", "completion_tokens", "cpu_s",
)


def item(item_id: str, **figures: object) -> ItemScore:
    """An answerable item with no figures but the ones given."""
    values: dict[str, object] = dict.fromkeys(FIGURES)
    values.update(question=f"question {item_id}", answer="an answer", must_include_terms=[], answerable=True,
                  refused=False, degenerate=False, cut_by_max_tokens=False)
    values.update(figures)
    return msgspec.convert({"item_id": item_id, **values}, ItemScore)
