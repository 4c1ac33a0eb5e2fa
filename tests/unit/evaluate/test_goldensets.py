"""Golden sets: the JSONL format, its rejections by line, the checksum, the counts and items from feedback."""

from __future__ import annotations

import pytest

from gyre_contracts import FeedbackRecorded
from gyre_runtime.state.golden_sets import (
    GoldenItem,
    GoldenSetError,
    describe,
    dump_golden_jsonl,
    items_from_feedback,
    parse_golden_jsonl,
    set_checksum,
)

VALID = (
    b'{"id": "q1", "question": "What does os.getcwd() return?", "must_include": ["working directory|cwd"],'
    b' "relevant": ["library/os.html"], "checked": true}\n'
    b"\n"
    b'{"question": "How do I fix a carburettor?", "answerable": false, "origin": "synthetic"}\n'
)


def items() -> list[GoldenItem]:
    return [
        GoldenItem(id="a", question="What is a?", answer="A is the first letter.", must_include=("first",),
                   relevant=("doc-a",), checked=True),
        GoldenItem(id="b", question="What is b?", relevant=("doc-b", "doc-b#3"), origin="synthetic"),
        GoldenItem(id="c", question="Where do I buy a kiln?", answerable=False, origin="synthetic"),
        GoldenItem(id="d", question="What is d?", answer="d.", origin="feedback", tags=("negative",)),
    ]


def test_a_valid_set_parses_with_blank_lines_skipped_and_defaults_filled_in() -> None:
    first, second = parse_golden_jsonl(VALID)
    assert first.id == "q1" and first.checked and first.answerable and first.origin == "hand"
    assert first.must_include == ("working directory|cwd",) and first.relevant == ("library/os.html",)
    assert first.alternatives() == [("working directory", "cwd")]
    # Without an id an item is named after its line: line 3, as line 2 is blank.
    assert second.id == "item-3"
    assert not second.answerable and second.must_include == () and second.origin == "synthetic"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"question": "q?",', "invalid JSON"),
        (b'["q?"]', "expected a JSON object"),
        (b'{"question": "q?", "expected": "x"}', "unknown field `expected`"),
        (b'{"question": 42}', "Expected `str`, got `int` - at `$.question`"),
        (b'{"question": "q?", "must_include": "cwd"}', "Expected `array`"),
        (b'{"question": "q?", "answerable": "yes"}', "Expected `bool`"),
        (b'{"question": "   "}', "the question is empty"),
        (b'{"question": "' + b"x" * 2001 + b'"}', "more than 2000"),
        (b'{"question": "q?", "answerable": false, "must_include": ["x"]}', "unanswerable item cannot have"),
        (b'{"question": "q?", "must_include": ["a||b"]}', "empty alternative"),
        (b'{"question": "q?", "relevant": [""]}', "relevant holds an empty id"),
        (b'{"question": "q?", "origin": "llm"}', "origin 'llm' is not one of hand, synthetic, feedback"),
    ],
)
def test_a_bad_line_is_rejected_with_its_line_number_and_reason(line: bytes, reason: str) -> None:
    with pytest.raises(GoldenSetError) as caught:
        parse_golden_jsonl(b'{"question": "fine?"}\n\n' + line + b"\n")
    assert caught.value.line == 3
    assert reason in caught.value.reason
    assert str(caught.value).startswith("line 3: ")


def test_a_duplicate_id_is_rejected_at_its_second_line_naming_the_first() -> None:
    data = b'{"id": "x", "question": "a?"}\n{"id": "y", "question": "b?"}\n{"id": "x", "question": "c?"}\n'
    with pytest.raises(GoldenSetError) as caught:
        parse_golden_jsonl(data)
    assert caught.value.line == 3
    assert caught.value.reason == "duplicate id 'x' (first on line 1)"


def test_a_default_id_that_collides_with_an_explicit_one_is_a_duplicate() -> None:
    with pytest.raises(GoldenSetError) as caught:
        parse_golden_jsonl(b'{"id": "item-2", "question": "a?"}\n{"question": "b?"}\n')
    assert caught.value.line == 2 and "duplicate id 'item-2'" in caught.value.reason


def test_only_the_first_of_several_bad_lines_is_reported() -> None:
    with pytest.raises(GoldenSetError) as caught:
        parse_golden_jsonl(b'{"question": "ok?"}\n{"question": ""}\n{"nonsense": 1}\n')
    assert caught.value.line == 2


@pytest.mark.parametrize("data", [b"", b"\n  \n\n"])
def test_an_empty_set_is_rejected_at_line_one(data: bytes) -> None:
    with pytest.raises(GoldenSetError) as caught:
        parse_golden_jsonl(data)
    assert (caught.value.line, caught.value.reason) == (1, "the golden set is empty: no items")


def test_an_invalid_item_cannot_be_built_in_code_either() -> None:
    with pytest.raises(ValueError, match="cannot have must_include"):
        GoldenItem(id="x", question="q?", answerable=False, must_include=("a",))


def test_a_set_survives_a_round_trip_through_jsonl() -> None:
    original = items()
    assert parse_golden_jsonl(dump_golden_jsonl(original)) == original


def test_the_dump_leaves_defaults_out_however_the_item_was_made() -> None:
    built = GoldenItem(id="a", question="q?")
    read = parse_golden_jsonl(b'{"id": "a", "question": "q?", "origin": "hand", "answerable": true, "tags": []}')[0]
    assert dump_golden_jsonl([built]) == dump_golden_jsonl([read]) == b'{"id":"a","question":"q?"}\n'


def test_the_checksum_is_the_same_for_the_same_items_in_any_order() -> None:
    checksum = set_checksum(items())
    assert checksum == set_checksum(list(reversed(items())))
    assert checksum == set_checksum(parse_golden_jsonl(dump_golden_jsonl(items())))
    assert len(checksum) == 64 and int(checksum, 16) >= 0


def test_the_checksum_changes_when_any_item_changes() -> None:
    changed = items()
    changed[0] = GoldenItem(id="a", question="What is a?", answer="A is the first letter.", must_include=("first",),
                            relevant=("doc-a",), checked=False)
    assert set_checksum(changed) != set_checksum(items())
    assert set_checksum(items()[:-1]) != set_checksum(items())


def test_describe_counts_items_by_answerability_labels_checks_and_origin() -> None:
    assert describe(items()) == {
        "items": 4,
        "answerable": 3,
        "unanswerable": 1,
        "with_labels": 2,
        "checked": 1,
        "by_origin": {"feedback": 1, "hand": 1, "synthetic": 2},
    }


# --- feedback --------------------------------------------------------------------------------------


def record(rating: int, request_id: str = "r1", correction: str | None = None) -> dict[str, object]:
    return {
        "question": "What does os.getcwd() return?", "answer": "The current working directory.",
        "rating": rating, "correction": correction, "citations": ["library/os.html", "library/os.html"],
        "request_id": request_id,
    }


@pytest.mark.parametrize("rating", [1, 4, 5])
def test_a_thumbs_up_or_a_good_star_rating_makes_an_item_with_the_answer_and_its_sources(rating: int) -> None:
    (item,) = items_from_feedback([record(rating)])
    assert item.id == "feedback-r1" and item.origin == "feedback" and not item.checked
    assert item.question == "What does os.getcwd() return?"
    assert item.answer == "The current working directory."
    assert item.relevant == ("library/os.html",)
    assert item.tags == () and item.answerable


@pytest.mark.parametrize("rating", [-1, 2])
def test_a_thumbs_down_with_a_correction_makes_a_negative_item_with_the_correction(rating: int) -> None:
    (item,) = items_from_feedback([record(rating, correction="A string naming the current directory.")])
    assert item.answer == "A string naming the current directory."
    assert item.tags == ("negative",)
    assert item.relevant == ()  # the rejected answer's sources are not known to be right


@pytest.mark.parametrize(("rating", "correction"), [(-1, None), (-1, "  "), (2, ""), (3, "Better."), (0, "x")])
def test_a_rating_without_a_usable_lesson_is_skipped(rating: int, correction: str | None) -> None:
    assert items_from_feedback([record(rating, correction=correction)]) == []


def test_feedback_ids_follow_request_ids_and_the_last_record_of_a_request_wins() -> None:
    made = items_from_feedback([record(1, "r1"), record(1, "r2"), record(-1, "r1", correction="Fixed.")])
    assert [item.id for item in made] == ["feedback-r2", "feedback-r1"]
    assert made[1].answer == "Fixed."
    assert items_from_feedback([record(1, "r2")]) == items_from_feedback([record(1, "r2")])


def test_feedback_records_from_the_feedback_service_are_read_too() -> None:
    recorded = FeedbackRecorded(
        tenant="t", feedback_id="f1", request_id="r9", rating=5, question="What is LBYL?",
        answer="Look before you leap.", cited_documents=("glossary.html",), model_version="m", prompt_version="p",
    )
    (item,) = items_from_feedback([recorded])
    assert (item.id, item.answer, item.relevant) == ("feedback-r9", "Look before you leap.", ("glossary.html",))
