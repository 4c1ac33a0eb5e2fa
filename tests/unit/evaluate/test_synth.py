"""Synthetic golden items: reproducible per seed, of every kind, with terms a copied question cannot supply."""

from __future__ import annotations

import re

import pytest

from gyre_runtime.state.golden_sets import dump_golden_jsonl, parse_golden_jsonl
from gyre_runtime.state.golden_synth import (
    UNANSWERABLE_TEMPLATES,
    SourceChunk,
    corpus_vocabulary,
    synthesize,
)


def chunk(document: str, heading: str, text: str, title: str = "") -> SourceChunk:
    return SourceChunk(
        document_id=document, chunk_id=f"{document}#{heading}", title=title or f"{document} — Reference",
        heading_path=(title or document, heading), text=text,
    )


def corpus() -> list[SourceChunk]:
    chunks = [
        chunk("shelf", "Shelf Objects", "A shelf is a persistent, dictionary-like object that stores pickled values "
              "under string keys.\n\nShelves are opened with the open() function of this module."),
        chunk("pathtools", "Path Functions", "pathtools.basename(path)\n\nReturn the final component of a pathname, "
              "after the last separator character.\n\npathtools.dirname(path)\n\nReturn the directory portion of "
              "the pathname, everything before the final separator."),
        chunk("clock", "Clocks", "The monotonic clock is a timer that never goes backwards, even when the system "
              "time is adjusted.\n\nThe clock module provides counters with nanosecond resolution for benchmarks."),
        chunk("archiver", "NAME", "archiver - Pack directories into compressed tarballs for distribution",
              title="archiver(1)"),
        chunk("archiver", "OPTIONS", "-v\n\n--verbose\n\nPrint the name of every file while it is being packed.\n\n"
              "--level=<n>\n\nChoose the compression level, from fastest at one to smallest at nine.",
              title="archiver(1)"),
        chunk("codec", "Bitstream Layout", "Encoded frames carry a checksum trailer so that corrupted packets are "
              "detected by receivers.\n\n```\nframe = encode(data); assert frame.ok()\n```\n\nToo short here."),
        chunk("codec", "Internals", "x = {a: b}; y = f(x) -> z; if y == 3 { return } else { loop(); }."),
    ]
    # A larger pool than any test asks for, so the seed decides the choice.
    for number in range(12):
        chunks.append(chunk(f"widget{number}", f"Widget {number} Tuning",
                            f"The widget{number} driver is a kernel component that schedules gadget{number} "
                            f"interrupts across processor queues."))
    return chunks


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def test_the_same_seed_gives_the_same_items_and_another_seed_another_choice() -> None:
    first = synthesize(corpus(), 10, seed=3)
    assert first == synthesize(corpus(), 10, seed=3)
    assert dump_golden_jsonl(first) == dump_golden_jsonl(synthesize(corpus(), 10, seed=3))
    assert {item.question for item in first} != {item.question for item in synthesize(corpus(), 10, seed=4)}


def test_every_kind_is_generated() -> None:
    kinds = {item.tags[0] for item in synthesize(corpus(), 40, seed=0)}
    assert kinds == {"definition", "heading", "summary", "unanswerable"}


def test_the_questions_name_what_the_sentences_define() -> None:
    questions = {item.question: item for item in synthesize(corpus(), 60, seed=0)}
    assert questions["What does pathtools.basename() return?"].answer.startswith("Return the final component")
    assert "What is a shelf?" in questions
    assert "What does the clock module provide?" in questions
    assert questions["What is archiver used for?"].answer.startswith("archiver - Pack directories")
    assert questions["In archiver, what does the --verbose option do?"].answer.startswith("Print the name")
    assert "What does the documentation say about Bitstream Layout?" in questions


def test_answerable_items_point_at_their_source_document_and_carry_checkable_terms() -> None:
    answerable = [item for item in synthesize(corpus(), 40, seed=0) if item.answerable]
    assert answerable
    for item in answerable:
        assert item.origin == "synthetic" and not item.checked
        assert len(item.relevant) == 1 and item.relevant[0] in {c.document_id for c in corpus()}
        assert 1 <= len(item.must_include) <= 2
        for term in item.must_include:
            assert term in item.answer, (term, item.answer)
            # Copying the question into the answer must not satisfy the check.
            assert term.lower() not in item.question.lower(), (term, item.question)


def test_code_and_fragments_never_become_references() -> None:
    answers = [item.answer for item in synthesize(corpus(), 60, seed=0)]
    assert not any("{" in answer or "==" in answer or "assert" in answer for answer in answers)
    assert "Too short here." not in answers


def test_unanswerable_questions_share_no_topic_word_with_the_corpus() -> None:
    vocabulary = corpus_vocabulary(corpus())
    template_words = set().union(*(words(template) for template in UNANSWERABLE_TEMPLATES))
    unanswerable = [item for item in synthesize(corpus(), 40, seed=0) if not item.answerable]
    assert unanswerable
    for item in unanswerable:
        assert item.must_include == () and item.relevant == () and item.tags == ("unanswerable",)
        topic_words = {word for word in words(item.question) - template_words if len(word) >= 4}
        assert topic_words and not topic_words & vocabulary.keys(), item.question


def test_a_topic_the_corpus_mentions_is_not_asked_about() -> None:
    chunks = [*corpus(), chunk("bakery", "Starters", "A sourdough starter keeps for weeks in a cool cupboard.")]
    questions = [item.question for item in synthesize(chunks, 200, seed=0, unanswerable_share=1.0)]
    assert questions and not any("sourdough" in question for question in questions)


@pytest.mark.parametrize(("n", "share", "expected"), [(10, 0.2, 2), (10, 0.0, 0), (5, 1.0, 5)])
def test_the_unanswerable_share_is_respected(n: int, share: float, expected: int) -> None:
    made = synthesize(corpus(), n, seed=1, unanswerable_share=share)
    assert len(made) == n
    assert sum(not item.answerable for item in made) == expected


def test_questions_and_ids_are_unique_and_the_items_parse_back() -> None:
    made = synthesize(corpus(), 60, seed=0)
    assert len({item.question for item in made}) == len(made)
    assert len({item.id for item in made}) == len(made)
    assert parse_golden_jsonl(dump_golden_jsonl(made)) == made


def test_answerable_items_are_spread_over_the_documents_before_any_repeats() -> None:
    made = synthesize(corpus(), 15, seed=0, unanswerable_share=0.0)
    documents = [item.relevant[0] for item in made]
    assert len(set(documents)) == len(documents)  # 15 answerable items, 17 documents with candidates


def test_a_question_two_documents_would_answer_is_left_out() -> None:
    twin = chunk("twin", "Twin", "The monotonic clock is a timer that never goes backwards, even when the system "
                 "time is adjusted.")
    questions = [item.question for item in synthesize([*corpus(), twin], 60, seed=0)]
    assert "What is the monotonic clock?" not in questions
    assert "What is the monotonic clock?" in [item.question for item in synthesize(corpus(), 60, seed=0)]


def test_fewer_items_come_back_when_the_corpus_offers_fewer_without_topping_up_the_unanswerable() -> None:
    made = synthesize(corpus()[:1], 50, seed=0, unanswerable_share=0.2)
    assert 0 < sum(item.answerable for item in made) < 40
    assert sum(not item.answerable for item in made) == 10
    assert [item.answerable for item in synthesize([], 5, seed=0)] == [False]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="unanswerable_share"):
        synthesize(corpus(), 5, unanswerable_share=1.5)


def test_the_vocabulary_counts_documents_not_occurrences() -> None:
    vocabulary = corpus_vocabulary([chunk("a", "h", "Queue queue QUEUE."), chunk("a", "i", "queue"),
                                    chunk("b", "h", "queue and stack")])
    assert vocabulary["queue"] == 2 and vocabulary["stack"] == 1 and "Queue" not in vocabulary
