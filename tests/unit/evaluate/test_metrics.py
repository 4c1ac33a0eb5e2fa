"""Per-item evaluation figures (retrieval, correctness, groundedness, refusal, loops) and their run aggregates."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec
import numpy as np
import numpy.typing as npt
import pytest

from gyre_evaluate.metrics import (
    METRICS,
    Costs,
    ItemScore,
    aggregate,
    embedding_similarity,
    groundedness,
    hit_labels,
    is_degenerate,
    is_refusal,
    mrr_at_k,
    must_include_pass,
    ndcg_at_k,
    recall_at_k,
    rouge_l,
    score_item,
    token_f1,
)

NO_ANSWER = "I don't know: none of the indexed documents answers that."
SOURCE = "The gateway listens on port 8080 and forwards chat requests to the generate service."


def fake_embed(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """Bag-of-letters vectors, L2-normalised: equal texts embed equally, disjoint letters are orthogonal."""
    rows = np.zeros((len(texts), 26))
    for row, text in enumerate(texts):
        for char in text.lower():
            if "a" <= char <= "z":
                rows[row, ord(char) - ord("a")] += 1
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.asarray(rows / np.where(norms == 0, 1, norms))


# --- retrieval -----------------------------------------------------------------------------------


def test_a_document_retrieved_as_several_chunks_counts_once_at_its_first_rank() -> None:
    hits = [("doc-b", "b-1"), ("doc-a", "a-1"), ("doc-a", "a-2"), ("doc-a", "a-3")]
    labels = hit_labels(hits, {"doc-a"})
    assert labels == [None, "doc-a", None, None]
    assert recall_at_k(labels, {"doc-a"}, 4) == 1.0
    assert mrr_at_k(labels, {"doc-a"}) == 0.5


def test_a_label_matches_a_hit_by_chunk_id_or_by_document_id() -> None:
    hits = [("doc-a", "a-1"), ("doc-b", "b-7"), ("doc-c", "c-1")]
    assert hit_labels(hits, {"b-7", "doc-c"}) == [None, "b-7", "doc-c"]
    # A chunk label is not satisfied by another chunk of its document.
    assert hit_labels([("doc-b", "b-1")], {"b-7"}) == [None]


def test_recall_counts_the_distinct_relevant_ids_within_the_top_k() -> None:
    ranked = ["x", "r1", "r1", "y", "r2"]
    assert recall_at_k(ranked, {"r1", "r2", "r3"}, 5) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, {"r1", "r2", "r3"}, 4) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"r1", "r2", "r3"}, 1) == 0.0


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_hit_within_k() -> None:
    assert mrr_at_k(["r", "x"], {"r"}) == 1.0
    assert mrr_at_k(["x", "y", "r"], {"r"}) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "r"], {"r"}, k=2) == 0.0


def test_ndcg_with_binary_gains_has_its_textbook_values() -> None:
    relevant = {"r1", "r2"}
    assert ndcg_at_k(["r1", "r2", "x"], relevant) == pytest.approx(1.0)
    # DCG = 1/log2(3) + 1/log2(5); ideal DCG = 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at_k(["x", "r1", "x2", "r2"], relevant) == pytest.approx(expected)
    assert ndcg_at_k(["x", "r1", "x2", "r2"], relevant) == pytest.approx(0.6509, abs=1e-4)
    assert ndcg_at_k(["x", "y"], relevant) == 0.0


def test_ndcg_counts_a_repeated_relevant_id_once_and_caps_the_ideal_at_k() -> None:
    assert ndcg_at_k(["r1", "r1"], {"r1", "r2"}) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    # Three relevant ids but k = 1: a relevant first hit is already the ideal ranking.
    assert ndcg_at_k(["r1"], {"r1", "r2", "r3"}, k=1) == 1.0


def test_retrieval_metrics_refuse_an_item_without_relevant_ids() -> None:
    with pytest.raises(ValueError, match="no relevant ids"):
        recall_at_k(["a"], set(), 5)


# --- correctness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "terms", "passed"),
    [
        # A term matches whole words only.
        ("Concatenate the two lists.", ["cat"], False),
        ("The cat sat.", ["cat"], True),
        ("Cats are not a cat.", ["cats"], True),
        # A term with punctuation at its edges still matches.
        ("Use os.getcwd() to get the working directory.", ["os.getcwd()"], True),
        ("Run git push --force to overwrite.", ["--force"], True),
        ("It is kept in C++.", ["c++"], True),
        ("Use mos.getcwd() instead.", ["os.getcwd()"], False),
        # Terms match case-insensitively, across line breaks and typographic apostrophes.
        ("The EVENT BUS carries it.", ["event bus"], True),
        ("The event\nbus carries it.", ["event bus"], True),
        ("It doesn’t retry.", ["doesn't"], True),
        # Alternatives separated by a bar need only one match.
        ("The colour is red.", ["color|colour"], True),
        ("The hue is red.", ["color|colour"], False),
        # Every term is required.
        ("NATS carries events.", ["NATS", "JetStream"], False),
        ("NATS JetStream carries events.", ["NATS", "JetStream"], True),
        # Without terms, must_include does not apply.
        ("anything", [], None),
        ("anything", ["", " | "], None),
    ],
)
def test_must_include_passes_when_the_answer_holds_every_term(
    answer: str, terms: list[str], passed: bool | None
) -> None:
    assert must_include_pass(answer, terms) is passed


def test_token_f1_follows_the_squad_normalisation() -> None:
    # Articles and punctuation dropped: [cat, sat] against [cat, sat, on, mat].
    assert token_f1("The cat sat!", "A cat sat on the mat.") == pytest.approx(2 / 3)
    assert token_f1("Paris [1].", "paris") == 1.0
    assert token_f1("Berlin", "Paris") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "Paris") == 0.0


def test_rouge_l_is_the_f_measure_of_the_longest_common_subsequence() -> None:
    # [cat, sat, on, mat] against [cat, lay, on, mat]: LCS 3 of 4 both ways.
    assert rouge_l("The cat sat on the mat.", "The cat lay on the mat.") == pytest.approx(0.75)
    # Same words in reverse order: LCS 1.
    assert rouge_l("mat on sat cat", "cat sat on mat") == pytest.approx(0.25)
    assert rouge_l("Port 8080 [2]", "port 8080") == 1.0


def test_embedding_similarity_is_the_cosine_of_answer_and_reference() -> None:
    assert embedding_similarity("abc [1]", "abc", fake_embed) == pytest.approx(1.0)
    assert embedding_similarity("aaa", "bbb", fake_embed) == pytest.approx(0.0)
    assert embedding_similarity("ab", "a", fake_embed) == pytest.approx(1 / math.sqrt(2))


# --- groundedness, refusal, degeneration ---------------------------------------------------------


def test_an_answer_restating_its_cited_source_is_grounded_with_valid_citations() -> None:
    answer = "The gateway listens on port 8080 [1]."
    assert groundedness(answer, [SOURCE]) == (1.0, 1.0)


def test_an_answer_unrelated_to_its_sources_is_not_grounded() -> None:
    share, validity = groundedness("Bananas ripen quickly in tropical kitchens [1].", [SOURCE])
    assert share == 0.0
    assert validity == 0.0


def test_citation_validity_does_not_apply_when_no_sentence_cites() -> None:
    share, validity = groundedness("The gateway listens on port 8080.", [SOURCE])
    assert share == 1.0
    assert validity is None


def test_the_no_answer_text_and_its_first_clause_are_refusals() -> None:
    assert is_refusal(NO_ANSWER, NO_ANSWER)
    assert is_refusal("i don't know: none of the indexed documents answers that", NO_ANSWER)
    assert is_refusal("I don’t know.", NO_ANSWER)


def test_common_ways_of_not_knowing_are_refusals() -> None:
    assert is_refusal("I do not know the answer to that.", NO_ANSWER)
    assert is_refusal("The sources do not mention the release date.", NO_ANSWER)
    assert is_refusal("There is no information about pricing.", NO_ANSWER)
    assert is_refusal("I'm not sure. The documents are silent on it.", "Sorry, no answer.")


def test_answers_are_not_refusals() -> None:
    assert not is_refusal("The gateway listens on port 8080 [1].", NO_ANSWER)
    assert not is_refusal("You should know that port 8080 is the default.", NO_ANSWER)
    assert not is_refusal("", NO_ANSWER)


def test_a_hedged_answer_that_cites_a_source_is_not_a_refusal() -> None:
    assert not is_refusal("I don't know the exact figure, but [1] gives 8080.", NO_ANSWER)


def test_degeneration_separates_looping_from_being_cut_by_the_token_limit() -> None:
    loop = " ".join(["the answer is the answer is"] * 20)
    assert is_degenerate(loop, "stop", 256) == (True, False)
    assert is_degenerate("The gateway listens on port 8080.", "length", 256) == (False, True)
    assert is_degenerate("The gateway listens on port 8080.", "stop", 256) == (False, False)


def test_without_a_finish_reason_an_answer_using_the_whole_budget_is_cut() -> None:
    assert is_degenerate("Port 8080", None, 256, completion_tokens=256)[1] is True
    assert is_degenerate("Port 8080", None, 256, completion_tokens=12)[1] is False
    assert is_degenerate("Port 8080", None, None, completion_tokens=256)[1] is False


# --- per item and per run ------------------------------------------------------------------------


def score(**overrides: object) -> ItemScore:
    values: dict[str, object] = {
        "item_id": "q1",
        "question": "Which port does the gateway listen on?",
        "answer": "The gateway listens on port 8080 [1].",
        "reference": "The gateway listens on port 8080.",
        "must_include": ["8080"],
        "relevant": ["doc-gw"],
        "hits": [("doc-x", "x-1"), ("doc-gw", "gw-1"), ("doc-gw", "gw-2")],
        "citations": [(1, "doc-gw", "gw-1", SOURCE)],
        "finish_reason": "stop",
        "max_tokens": 256,
        "no_answer_text": NO_ANSWER,
        "costs": Costs(ttft_ms=120.0, total_ms=900.0, prompt_tokens=400, completion_tokens=12, cpu_s=0.5),
        "k": 5,
    }
    values.update(overrides)
    return score_item(**values)  # type: ignore[arg-type]


def test_a_correct_grounded_answer_scores_full_marks() -> None:
    item = score(embed=fake_embed)
    assert item.must_include is True
    assert item.token_f1 == 1.0 and item.rouge_l == 1.0
    assert item.embedding_similarity == pytest.approx(1.0)
    assert (item.grounded_sentences, item.citation_validity) == (1.0, 1.0)
    assert (item.recall_at_k, item.mrr_at_10) == (1.0, 0.5)
    assert item.answerable_refused is False and item.unanswerable_refused is None
    assert (item.degenerate, item.cut_by_max_tokens) == (False, False)
    assert (item.ttft_ms, item.completion_tokens, item.cpu_s) == (120.0, 12, 0.5)


def test_a_refused_answerable_item_fails_on_correctness() -> None:
    item = score(answer=NO_ANSWER, citations=[], embed=fake_embed)
    assert item.refused and item.answerable_refused is True
    assert item.must_include is False
    assert (item.token_f1, item.rouge_l, item.embedding_similarity) == (0.0, 0.0, 0.0)
    assert item.grounded_sentences is None


def test_a_refusal_holding_the_terms_by_chance_still_fails_must_include() -> None:
    item = score(answer="I don't know", must_include=["know"])
    assert item.must_include is False


def test_refusing_an_unanswerable_item_is_the_pass_and_correctness_does_not_apply() -> None:
    refused = score(answer=NO_ANSWER, answerable=False, reference=None, must_include=[], relevant=[], citations=[])
    assert refused.unanswerable_refused is True
    assert refused.answerable_refused is None
    assert (refused.must_include, refused.token_f1, refused.rouge_l) == (None, None, None)
    assert refused.recall_at_k is None and refused.ndcg_at_10 is None
    answered = score(answerable=False, reference=None, must_include=[], relevant=[])
    assert answered.unanswerable_refused is False


def test_recall_is_measured_at_the_run_top_k() -> None:
    assert score(k=1).recall_at_k == 0.0
    assert score(k=2).recall_at_k == 1.0


def test_embedding_similarity_is_absent_without_an_embedder() -> None:
    assert score().embedding_similarity is None


def test_an_item_score_round_trips_through_json() -> None:
    item = score()
    assert msgspec.json.decode(msgspec.json.encode(item), type=ItemScore) == item


def test_every_metric_names_an_item_figure_or_is_an_item_count() -> None:
    figures = set(ItemScore.__struct_fields__)
    for name, spec in METRICS.items():
        assert spec.field in figures or (spec.field == "" and spec.statistic == "count"), name


def test_aggregate_averages_each_metric_over_the_items_it_applies_to() -> None:
    good = score(item_id="a")
    refused = score(item_id="b", answer=NO_ANSWER, citations=[])
    unanswerable = score(
        item_id="c", answer=NO_ANSWER, answerable=False, reference=None, must_include=[], relevant=[], citations=[],
        costs=Costs(total_ms=300.0))
    metrics = aggregate([good, refused, unanswerable])
    assert metrics["must_include"] == 0.5
    assert metrics["answerable_refused"] == 0.5
    assert metrics["unanswerable_refused"] == 1.0
    assert metrics["grounded_sentences"] == 1.0  # refusals have no sentences to ground
    assert metrics["recall_at_k"] == 1.0  # the unanswerable item has no labels
    assert (metrics["items"], metrics["answerable_items"], metrics["unanswerable_items"]) == (3.0, 2.0, 1.0)
    assert metrics["total_ms_p50"] == 900.0
    assert metrics["ttft_ms_p50"] == 120.0  # the third item did not measure it
    assert metrics["cpu_s_mean"] == 0.5


def test_aggregate_leaves_out_metrics_no_item_applies_to() -> None:
    metrics = aggregate([score(reference=None, relevant=[], costs=None)])
    assert "token_f1" not in metrics and "recall_at_k" not in metrics and "total_ms_p95" not in metrics
    assert "unanswerable_refused" not in metrics and "embedding_similarity" not in metrics
    assert set(metrics) <= set(METRICS)
    assert metrics["must_include"] == 1.0


def test_latency_percentiles_interpolate_between_items() -> None:
    items = [score(item_id=str(i), costs=Costs(total_ms=float(ms))) for i, ms in enumerate([100, 200, 300, 400, 1000])]
    metrics = aggregate(items)
    assert metrics["total_ms_p50"] == 300.0
    assert metrics["total_ms_p95"] == pytest.approx(880.0)
