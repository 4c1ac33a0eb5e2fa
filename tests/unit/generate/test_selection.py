"""Source sentences for the prompt and the extractive answer: chosen by overlap with the question, cited."""

from __future__ import annotations

import pytest

from gyre_generate.selection import cited_sources, extractive_answer, select_passage, short_title

GYRE = "Gyre stores documents in Qdrant and answers with citations."
GETCWD = "os.getcwd()\nReturn a string representing the current working directory."
OS_DOCS = (
    "os.getcwd()\n"
    "Return a string representing the current working directory.\n"
    "os.chdir(path)\n"
    "Change the current working directory to path. The path may be relative. "
    "This function can raise OSError and subclasses such as FileNotFoundError."
)
PATHLIB = (
    "The pathlib module offers classes representing filesystem paths. Pure paths provide purely computational "
    "operations without I/O. Concrete paths inherit from pure paths and also provide I/O operations. "
    "Path.cwd() returns a new path object representing the current directory. Path.home() returns the home "
    "directory. Paths can be joined with the slash operator."
)


# --- select_passage ---


@pytest.mark.parametrize(
    ("question", "chunk", "passage"),
    [
        pytest.param(
            "anything", "Gyre stores documents.\n\n  It cites   them.", "Gyre stores documents. It cites them.",
            id="a_short_chunk_comes_back_whole_with_whitespace_normalised",
        ),
        pytest.param(
            "Which pathlib class represents the current directory?", PATHLIB,
            "The pathlib module offers classes representing filesystem paths. "
            "Path.cwd() returns a new path object representing the current directory.",
            id="the_sentences_closest_to_the_question_are_kept_in_their_order",
        ),
        pytest.param(
            "How do I get the current working directory?", OS_DOCS,
            "os.getcwd() Return a string representing the current working directory.",
            id="a_signature_line_is_kept_with_its_description",
        ),
        pytest.param(
            "What does os.chdir do?", OS_DOCS, "os.chdir(path) Change the current working directory to path.",
            id="a_matching_signature_brings_its_description_along",
        ),
        pytest.param(
            "What is the capital of France?", PATHLIB,
            "The pathlib module offers classes representing filesystem paths. "
            "Pure paths provide purely computational operations without I/O.",
            id="without_any_overlap_the_chunk_opening_is_kept",
        ),
    ],
)
def test_a_passage_of_at_most_two_sentences_is_chosen_for_the_question(question: str, chunk: str, passage: str) -> None:
    assert select_passage(question, chunk, max_sentences=2) == passage


def test_embedding_scores_add_to_the_lexical_ones() -> None:
    scores = [0.0, 0.0, 0.0, 0.0, 0.0, 2.0]  # the last sentence, which shares no word with the question
    passage = select_passage("How do I get the current directory?", PATHLIB, max_sentences=1, embed_scores=scores)
    assert passage == "Paths can be joined with the slash operator."


def test_embedding_scores_must_match_the_sentences() -> None:
    with pytest.raises(ValueError, match="2 scores for 6 sentences"):
        select_passage("question", PATHLIB, embed_scores=[0.1, 0.2])


# --- extractive_answer ---


def test_the_best_matching_sentence_is_quoted_and_cited() -> None:
    text, cited = extractive_answer("Where does Gyre store documents?", ["Python is a language.", GYRE])
    assert text == f'From [2]: "{GYRE}"'
    assert cited == (2,)


def test_a_signature_is_quoted_with_its_description_and_counts_for_the_match() -> None:
    text, cited = extractive_answer("What does os.getcwd() return?", [GYRE, OS_DOCS])
    assert text == 'From [2]: "os.getcwd(): Return a string representing the current working directory."'
    assert cited == (2,)


def test_ties_go_to_the_earlier_source() -> None:
    sources = ["Documents are stored on disk.", GYRE]
    assert extractive_answer("Where are documents stored?", sources, max_sentences=1) == (
        'From [1]: "Documents are stored on disk."',
        (1,),
    )
    text, cited = extractive_answer("Where are documents stored?", sources)
    assert cited == (1, 2)
    assert text.splitlines() == ['From [1]: "Documents are stored on disk."', f'From [2]: "{GYRE}"']


def test_a_second_sentence_is_quoted_only_when_it_matches_nearly_as_well() -> None:
    text, cited = extractive_answer("How do I change the working directory?", [OS_DOCS, GYRE])
    assert text == 'From [1]: "os.chdir(path): Change the current working directory to path."'
    assert cited == (1,)


def test_two_equally_good_sentences_from_two_sources_are_both_quoted_best_source_first() -> None:
    text, cited = extractive_answer(
        "current working directory", [GYRE, GETCWD, "The working directory is the current directory."]
    )
    assert cited == (2, 3)
    assert text.splitlines() == [
        'From [2]: "os.getcwd(): Return a string representing the current working directory."',
        'From [3]: "The working directory is the current directory."',
    ]


def test_adjacent_sentences_of_one_source_are_quoted_as_one_passage() -> None:
    text, cited = extractive_answer("Which paths provide I/O operations?", [PATHLIB])
    assert text == (
        'From [1]: "Pure paths provide purely computational operations without I/O. '
        'Concrete paths inherit from pure paths and also provide I/O operations."'
    )
    assert cited == (1,)


def test_the_same_sentence_in_two_sources_is_quoted_once() -> None:
    text, cited = extractive_answer("Where does Gyre store documents?", [GYRE, GYRE])
    assert (text, cited) == (f'From [1]: "{GYRE}"', (1,))


def test_nothing_is_extracted_when_no_sentence_shares_a_word_with_the_question() -> None:
    assert extractive_answer("What is the capital of France?", [GYRE, OS_DOCS]) == ("", ())
    assert extractive_answer("Where does Gyre store documents?", []) == ("", ())


# --- cited_sources ---


def test_cited_sources_are_the_existing_ones_in_order() -> None:
    assert cited_sources("Stored [3]. Cited [1, 9]. Again [3].", 3) == (3, 1)


def test_an_answer_citing_nothing_cites_no_source() -> None:
    assert cited_sources("Gyre stores documents.", 2) == ()


def test_an_extractive_answer_names_the_page_it_quotes() -> None:
    text, cited = extractive_answer(
        "Which git command checks the GPG signature of commits?",
        ["Signs a tag with GPG.", "Validates the GPG signature created by git commit -S."],
        titles=["git-tag(1)", "git-verify-commit(1)"],
    )
    # The page's name counts in the match: the verify-commit page wins over the tag page.
    assert text == 'From [2] (git-verify-commit(1)): "Validates the GPG signature created by git commit -S."'
    assert cited == (2,)
    assert short_title("shutil — High-level file operations — Python 3.11.2 documentation") == "shutil"
