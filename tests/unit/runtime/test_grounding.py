"""Grounding checks without a model: sentence splitting, citations, content tokens, support, loops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from gyre_runtime.grounding import (
    citation_numbers,
    content_tokens,
    filter_citations,
    lexical_support,
    loop_start,
    question_coverage,
    repetition_loop,
    sentence_spans,
    sentence_support,
    split_sentences,
    stem,
    strip_citations,
)

GYRE = "Gyre stores documents in Qdrant and answers with citations."
GETCWD = "os.getcwd()\nReturn a string representing the current working directory."
LOOPING = (
    "Documents are stored in a variety of locations, including: a. Document storage a. Document storage "
    "a. Document storage"
)


# --- sentences ---


def test_abbreviations_decimals_and_code_do_not_end_sentences() -> None:
    text = (
        "Use a path, e.g. the one os.getcwd() returns, i.e. the working directory. Python 3.11 is faster. "
        "Call os.path.join() to join parts."
    )
    assert split_sentences(text) == [
        "Use a path, e.g. the one os.getcwd() returns, i.e. the working directory.",
        "Python 3.11 is faster.",
        "Call os.path.join() to join parts.",
    ]


def test_a_sentence_may_start_with_a_lowercase_identifier() -> None:
    assert split_sentences("Return a string. os.chdir() changes it.") == ["Return a string.", "os.chdir() changes it."]


def test_initials_and_titles_do_not_end_sentences_but_etc_before_a_capital_does() -> None:
    assert split_sentences("Mr. Smith wrote J. R. tools, lists etc. Then he left!") == [
        "Mr. Smith wrote J. R. tools, lists etc.",
        "Then he left!",
    ]


def test_list_markers_and_line_breaks_end_sentences_and_markers_are_left_out() -> None:
    text = (
        "Gyre has:\n- document storage [1]\n* answers with citations\n\n1. Install it.\n2) Run it.\n# Usage\nCall it."
    )
    assert split_sentences(text) == [
        "Gyre has:",
        "document storage [1]",
        "answers with citations",
        "Install it.",
        "Run it.",
        "Usage",
        "Call it.",
    ]


def test_a_label_line_stays_apart_from_its_description() -> None:
    assert split_sentences(GETCWD) == ["os.getcwd()", "Return a string representing the current working directory."]


def test_wrapped_lines_are_joined_into_one_sentence() -> None:
    assert split_sentences("Gyre stores documents in\nQdrant and answers\nwith citations. Next one.") == [
        GYRE,
        "Next one.",
    ]


def test_a_citation_after_the_full_stop_belongs_to_the_sentence_before() -> None:
    assert split_sentences("Gyre stores documents in Qdrant. [1] It answers with citations [2].\n[3]") == [
        "Gyre stores documents in Qdrant. [1]",
        "It answers with citations [2]. [3]",
    ]


def test_empty_and_blank_text_has_no_sentences() -> None:
    assert split_sentences("") == []
    assert split_sentences(" \n\n - \n") == []


def test_sentence_spans_point_at_the_sentences_in_the_text() -> None:
    text = "- Gyre stores documents.  It cites [1].\n"
    assert [text[start:end] for start, end in sentence_spans(text)] == ["Gyre stores documents.", "It cites [1]."]


# --- citations ---


def test_citation_numbers_are_unique_in_order_of_first_citation() -> None:
    assert citation_numbers("A [2]. B [1, 3]. C [1][3]. D [2; 4].") == (2, 1, 3, 4)


def test_citation_ranges_and_source_words_are_read() -> None:
    assert citation_numbers("See [1-3] and [Source 5].") == (1, 2, 3, 5)


def test_indexing_in_code_is_not_a_citation() -> None:
    assert citation_numbers("sys.argv[1] is the first argument, f()[2] too.") == ()


def test_strip_citations_leaves_no_stray_spaces() -> None:
    assert strip_citations("[1] Gyre stores documents in Qdrant [1]. It cites [2, 3] sources.") == (
        "Gyre stores documents in Qdrant. It cites sources."
    )


def test_filter_citations_drops_only_the_numbers_not_kept() -> None:
    assert filter_citations("Stored [1, 7]. Cited [9]. Kept [2].", {1, 2}) == "Stored [1]. Cited. Kept [2]."


# --- tokens ---


@pytest.mark.parametrize("word", ["store", "stores", "stored", "storing"])
def test_inflections_share_a_stem(word: str) -> None:
    assert stem(word) == stem("store")


@pytest.mark.parametrize(("word", "like"), [("embedding", "embed"), ("embeds", "embed"), ("directories", "directory")])
def test_other_inflections_share_a_stem(word: str, like: str) -> None:
    assert stem(word) == stem(like)


@pytest.mark.parametrize("word", ["string", "need", "class", "status", "analysis"])
def test_words_that_only_look_inflected_are_not_cut(word: str) -> None:
    assert stem(word) == word


def test_identifiers_count_whole_and_by_their_parts() -> None:
    tokens = content_tokens("Call os.getcwd() with --verbose or max_sentences.")
    assert {"os.getcwd", "os", "getcwd", "--verbose", stem("verbose"), "max_sentences", "max"} <= set(tokens)
    assert tokens[0] == "call"


def test_stopwords_and_abbreviations_are_not_content() -> None:
    assert content_tokens("It is what it is, e.g. as you have it.") == []


def test_a_version_number_is_one_token() -> None:
    assert content_tokens("Python 3.11") == ["python", "3.11"]


# --- lexical support ---


def test_a_copied_sentence_is_fully_supported() -> None:
    assert lexical_support(GYRE, GYRE) == 1.0


def test_a_paraphrase_with_the_same_key_terms_is_supported() -> None:
    assert lexical_support("Gyre keeps its documents stored in Qdrant.", GYRE) >= 0.6


def test_an_invented_sentence_is_not_supported() -> None:
    assert lexical_support("Gyre is a Python library for web scraping", GYRE) < 0.6


def test_a_claim_without_content_words_has_no_support() -> None:
    assert lexical_support("It is.", GYRE) == 0.0


# --- sentence support ---


def test_each_sentence_is_checked_against_the_best_source_sentence() -> None:
    supports = sentence_support(
        "Gyre keeps documents in Qdrant [1]. Gyre is a Python library for web scraping [2].",
        [GETCWD, GYRE],
    )
    assert [(s.best_source, s.supported, s.citation_valid) for s in supports] == [(2, True, False), (2, False, False)]
    assert supports[0].evidence == GYRE
    assert supports[1].lexical == pytest.approx(0.2)
    assert supports[0].semantic is None


def test_a_claim_joining_a_label_and_its_description_is_supported_by_both_sentences() -> None:
    [support] = sentence_support("os.getcwd() returns the current working directory [1].", [GETCWD])
    assert support.supported
    assert support.citation_valid is True
    assert support.evidence == "os.getcwd() Return a string representing the current working directory."


def test_a_citation_of_a_missing_source_is_invalid_even_beside_a_good_one() -> None:
    [support] = sentence_support(f"{GYRE} [1, 4]", [GYRE])
    assert support.supported
    assert support.cited == (1, 4)
    assert support.citation_valid is False


def test_a_sentence_citing_nothing_has_no_citation_verdict() -> None:
    [support] = sentence_support(GYRE, [GYRE])
    assert support.citation_valid is None
    assert support.sentence == GYRE


def test_sentences_without_content_words_are_skipped() -> None:
    answer = "Yes. It is. Gyre stores documents."
    supports = sentence_support(answer, [GYRE])
    assert [s.sentence for s in supports] == ["Gyre stores documents."]
    assert supports[0].span == (answer.index("Gyre"), len(answer))


def test_without_sources_nothing_is_supported() -> None:
    [support] = sentence_support(f"{GYRE} [1]", [])
    assert (support.best_source, support.evidence) == (None, "")
    assert not support.supported
    assert support.citation_valid is False


def test_a_stricter_lexical_threshold_rejects_a_partial_paraphrase() -> None:
    [support] = sentence_support("Gyre keeps documents in Qdrant.", [GYRE], lexical_threshold=0.9)
    assert support.lexical == pytest.approx(0.75)
    assert not support.supported


def _keyword_embed(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """An embedding that only knows two topics: storage (Qdrant, keeps, stores) and scraping."""
    rows = []
    for text in texts:
        lowered = text.lower()
        storage = sum(word in lowered for word in ("qdrant", "keeps", "stores", "persist"))
        scraping = sum(word in lowered for word in ("scrap", "crawl", "web"))
        vector = np.array([storage, scraping, 0.1], dtype=np.float64)
        rows.append(vector / np.linalg.norm(vector))
    return np.array(rows)


def test_a_semantic_match_supports_a_sentence_with_different_words() -> None:
    [support] = sentence_support("Everything persists inside the vector database.", [GYRE], embed=_keyword_embed)
    assert support.lexical < 0.6
    assert support.semantic is not None and support.semantic >= 0.75
    assert support.supported


def test_a_semantic_mismatch_does_not_support_an_invented_sentence() -> None:
    [support] = sentence_support("Gyre crawls the web.", [GYRE], embed=_keyword_embed)
    assert support.semantic is not None and support.semantic < 0.75
    assert not support.supported


# --- loops ---


def test_the_looping_answer_is_a_loop_cut_after_its_first_cycle() -> None:
    start = loop_start(LOOPING)
    assert start is not None
    assert LOOPING[:start].rstrip() == "Documents are stored in a variety of locations, including: a. Document storage"
    assert repetition_loop(LOOPING)


def test_a_numbered_loop_is_a_loop_although_the_numbers_differ() -> None:
    text = "1. Gyre stores documents. 2. Gyre stores documents. 3. Gyre stores documents."
    start = loop_start(text)
    assert start is not None and text[:start].rstrip() == "1. Gyre stores documents."


def test_a_sentence_repeated_three_times_between_other_text_is_a_loop() -> None:
    text = (
        "Gyre answers questions. It cites its sources. Ask it anything. It cites its sources. Try it. "
        "It cites its sources."
    )
    start = loop_start(text)
    assert start is not None
    assert text[:start].rstrip() == "Gyre answers questions. It cites its sources. Ask it anything."


def test_a_tail_that_loops_with_small_variations_is_a_loop() -> None:
    text = (
        "Gyre has several parts. The ingest service reads files and the embed service embeds chunks for search, "
        "the ingest service reads files and the embed service embeds chunks for retrieval, "
        "the ingest service reads files and the embed service embeds chunks for answers, "
        "the ingest service reads files and the embed service"
    )
    start = loop_start(text)
    assert start is not None
    assert text[:start].endswith("embeds chunks for search, ")


def test_the_loop_offset_is_never_zero_so_a_caller_can_test_it_for_truth() -> None:
    start = loop_start("the the the the the the the the the")
    assert start is not None and start > 0


def test_prose_that_reuses_a_phrase_twice_is_not_a_loop() -> None:
    text = (
        "The current working directory is where relative paths start. os.getcwd() returns the current working "
        "directory, and os.chdir() changes it."
    )
    assert not repetition_loop(text)


def test_prose_that_reuses_a_phrase_three_times_with_new_content_between_is_not_a_loop() -> None:
    text = (
        "Gyre stores documents in Qdrant. It stores documents in Qdrant for search, and it stores documents in "
        "Qdrant when ingesting them, so answers cite them."
    )
    assert not repetition_loop(text)


def test_a_list_with_a_repeated_short_prefix_is_not_a_loop() -> None:
    text = (
        "- The os module provides functions for files.\n"
        "- The sys module provides functions for the interpreter.\n"
        "- The io module provides functions for streams.\n"
        "- The re module provides functions for patterns."
    )
    assert not repetition_loop(text)


def test_emphasis_and_number_lists_are_not_loops() -> None:
    assert not repetition_loop("It is very, very, very fast.")
    assert not repetition_loop("range(10) gives 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 in order.")


def test_two_repeats_are_not_enough_for_a_loop() -> None:
    assert not repetition_loop("a. Document storage a. Document storage and more text after it.")
    assert not repetition_loop("- Gyre stores documents.\n- Gyre stores documents.\n- It cites them.")


def test_a_list_item_repeated_three_times_is_a_loop() -> None:
    text = "Gyre has:\n- Gyre stores documents.\n- It cites them.\n- Gyre stores documents.\n- Gyre stores documents."
    start = loop_start(text)
    assert start is not None
    assert text[:start] == "Gyre has:\n- Gyre stores documents.\n- It cites them.\n"


def test_question_coverage_is_the_share_of_what_the_question_names_that_the_passages_mention() -> None:
    passages = ["os.getcwd() Return a string representing the current working directory."]
    assert question_coverage("What does os.getcwd() return?", passages) == 1.0
    # How a question is asked does not count; what it asks about does.
    assert question_coverage("What does the documentation say about the working directory?", passages) == 1.0
    assert question_coverage("What does the PYTHONSTARTUP environment variable do?", passages) == 0.0
    assert question_coverage("qwxz zzkq florp vintrabulous?", passages) == 0.0
    assert question_coverage("What is it?", passages) == 1.0  # nothing to look for
