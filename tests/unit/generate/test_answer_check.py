"""The grounding check of a generated answer: loops cut, unsupported sentences dropped, citations
corrected, the extractive fallback when too little is supported."""

from __future__ import annotations

from gyre_generate.answer_check import check_answer, repair_copied_words

GYRE = "Gyre stores documents in Qdrant and answers with citations."
GETCWD = "os.getcwd()\nReturn a string representing the current working directory."
INVENTED = "Gyre is a Python library for web scraping."
QUESTION = "Where does Gyre store documents?"
LOOPING = (
    "Documents are stored in a variety of locations, including: a. Document storage a. Document storage "
    "a. Document storage"
)


def test_a_fully_supported_answer_is_kept_as_it_is() -> None:
    answer = "Gyre stores documents in Qdrant [2]. It answers with citations [2]."
    checked = check_answer(QUESTION, answer, [GETCWD, GYRE])
    assert (checked.text, checked.action, checked.supported, checked.total, checked.cited) == (
        answer,
        "kept",
        2,
        2,
        (2,),
    )


def test_an_unsupported_sentence_is_dropped() -> None:
    checked = check_answer(QUESTION, f"Gyre stores documents in Qdrant [2]. {INVENTED}", [GETCWD, GYRE])
    assert checked.text == "Gyre stores documents in Qdrant [2]."
    assert (checked.action, checked.supported, checked.total, checked.cited) == ("trimmed", 1, 2, (2,))


def test_the_looping_answer_falls_back_to_the_best_source_sentence() -> None:
    checked = check_answer(QUESTION, LOOPING, [GETCWD, GYRE])
    assert checked.action == "extractive"
    assert checked.text == f'From [2]: "{GYRE}"'
    assert checked.cited == (2,)


def test_a_looping_tail_is_cut_before_the_sentences_are_checked() -> None:
    answer = "Gyre stores documents in Qdrant [1]. " + "It answers with citations. " * 3
    checked = check_answer(QUESTION, answer, [GYRE])
    assert checked.text == "Gyre stores documents in Qdrant [1]. It answers with citations."
    assert (checked.action, checked.supported, checked.total) == ("trimmed", 2, 2)


def test_a_mostly_invented_answer_falls_back_to_the_extractive_answer() -> None:
    answer = f"{INVENTED} It was written in 1999 by Guido. Gyre stores documents [1]."
    checked = check_answer(QUESTION, answer, [GYRE])  # the last sentence only restates the question
    assert (checked.action, checked.supported, checked.total) == ("extractive", 0, 3)
    assert checked.text == f'From [1]: "{GYRE}"'


def test_half_supported_is_enough_to_keep_the_supported_half() -> None:
    answer = f"Gyre stores documents in Qdrant. {INVENTED}"
    assert check_answer(QUESTION, answer, [GYRE], min_supported_share=0.5).action == "trimmed"
    assert check_answer(QUESTION, answer, [GYRE], min_supported_share=0.75).action == "extractive"


def test_with_nothing_supported_and_nothing_matching_the_question_the_text_is_empty() -> None:
    checked = check_answer("What is the capital of France?", INVENTED, [GYRE, GETCWD])
    assert (checked.text, checked.action, checked.cited) == ("", "extractive", ())


def test_without_sources_the_answer_is_not_checked() -> None:
    checked = check_answer(QUESTION, f"{INVENTED} [1]", [])
    assert (checked.text, checked.action, checked.supported, checked.total, checked.cited) == (
        f"{INVENTED} [1]",
        "none",
        0,
        0,
        (),
    )


def test_an_answer_citing_nothing_gets_the_citation_of_its_supporting_source() -> None:
    answer = "Gyre stores documents in Qdrant. It answers with citations."
    checked = check_answer(QUESTION, answer, [GETCWD, GYRE])
    assert checked.text == "Gyre stores documents in Qdrant. It answers with citations [2]."
    assert (checked.action, checked.cited) == ("kept", (2,))


def test_each_run_of_sentences_from_one_source_gets_its_own_citation() -> None:
    answer = "os.getcwd() returns the current working directory. Gyre stores documents in Qdrant."
    checked = check_answer("What does os.getcwd() return?", answer, [GETCWD, GYRE])
    assert checked.text == (
        "os.getcwd() returns the current working directory [1]. Gyre stores documents in Qdrant [2]."
    )
    assert checked.cited == (1, 2)


def test_a_citation_of_a_source_that_does_not_support_the_sentence_is_corrected() -> None:
    checked = check_answer(QUESTION, "Gyre stores documents in Qdrant [1].", [GETCWD, GYRE])
    assert checked.text == "Gyre stores documents in Qdrant [2]."
    assert checked.cited == (2,)


def test_a_citation_of_a_missing_source_is_removed_when_another_cited_one_supports() -> None:
    checked = check_answer(QUESTION, "Gyre stores documents in Qdrant [2, 7].", [GETCWD, GYRE])
    assert checked.text == "Gyre stores documents in Qdrant [2]."
    assert checked.cited == (2,)


def test_a_list_keeps_its_layout_when_an_item_is_dropped() -> None:
    answer = (
        "os.getcwd() returns the current working directory [1].\n"
        "- It returns a string.\n"
        "- It was added in Python 2 by Guido.\n"
        "- It returns the working directory."
    )
    checked = check_answer("What does os.getcwd() return?", answer, [GETCWD])
    assert checked.text == (
        "os.getcwd() returns the current working directory [1].\n- It returns a string.\n"
        "- It returns the working directory."
    )
    assert (checked.action, checked.supported, checked.total) == ("trimmed", 3, 4)


def test_a_python_docs_paraphrase_is_supported_by_the_signature_and_its_description() -> None:
    checked = check_answer(
        "How do I get the current working directory?",
        "Call os.getcwd(), which returns a string with the current working directory.",
        [GYRE, GETCWD],
    )
    assert checked.action == "kept"
    assert checked.text == "Call os.getcwd(), which returns a string with the current working directory [2]."


def test_a_sentence_that_only_restates_the_question_is_not_an_answer() -> None:
    sources = ["class queue.LifoQueue(maxsize=0) Constructor for a LIFO queue.", "The queue module has queues."]
    checked = check_answer("Which queue class implements a LIFO queue?", "The queue class implements a LIFO queue [1].",
                           sources)
    assert checked.action == "extractive" and "LifoQueue" in checked.text and checked.cited == (1,)


def test_a_number_no_source_has_makes_a_sentence_unsupported() -> None:
    source = "ERROR 40 Due to a more serious problem, the software has not been able to perform some function."
    question = "What is the numeric value of the logging level ERROR?"
    wrong = check_answer(question, "The level ERROR is 1 [1].", [source])
    assert wrong.action == "extractive" and "40" in wrong.text
    right = check_answer(question, "The level ERROR is 40 [1].", [source])
    assert right.action == "kept" and right.text == "The level ERROR is 40 [1]."


def test_a_name_misspelled_while_copying_is_spelled_as_the_source_does() -> None:
    checked = check_answer("Where does Gyre store documents?", "Gyre stores documents in Qdrent [1].", [GYRE])
    assert checked.text == "Gyre stores documents in Qdrant [1]." and checked.action == "kept"
    # Plain words are left alone: one letter makes another English word.
    assert repair_copied_words("The answer is short.", ["Answers are kept short."]) == "The answer is short."


def test_an_answer_framed_around_the_question_says_nothing() -> None:
    sources = ["git-clean - Remove untracked files from the working tree", "Cleans the working tree."]
    checked = check_answer("Which git command removes untracked files from the working tree?",
                           "The answer is: The git command removes untracked files from the working tree [1]", sources)
    assert checked.action == "extractive" and "git-clean" in checked.text


def test_a_word_the_model_looped_inside_is_not_supported() -> None:
    sources = ["The pre-push hook is called by git-push and can be used to prevent a push from taking place."]
    checked = check_answer("Which hook is called by git push and can prevent a push?",
                           "The hook git-push-remote-fetch-remote-fetch-remote- [1]", sources)
    assert checked.action == "extractive" and "pre-push" in checked.text


def test_what_a_sentence_adds_to_the_question_must_come_from_its_own_evidence() -> None:
    sources = ["exception ZeroDivisionError Raised when the second argument of a division or modulo operation is zero.",
               "exception FileNotFoundError Raised when a file or directory is requested but doesn't exist."]
    checked = check_answer("Which exception is raised when the second argument of a division is zero?",
                           "The exception FileNotFoundError is raised when the second argument of a division is zero.",
                           sources)
    assert checked.action == "extractive" and "ZeroDivisionError" in checked.text and checked.cited == (1,)
