"""Quality checks on cleaned text: each failing check is named, with its measure and its setting."""

from __future__ import annotations

from typing import Any

import pytest

from gyre_ingest.quality import QualityThresholds, check_quality, measure_quality

GOOD = (
    "Gyre turns an organisation's documents into a question-answering service.\n"
    "Each document is cleaned, checked, split into chunks and embedded.\n"
    "Rejected documents carry the reasons they were rejected."
)


def codes(text: str, thresholds: QualityThresholds | None = None) -> list[str]:
    return [r.code for r in check_quality(text, thresholds or QualityThresholds())]


def test_an_ordinary_document_passes_every_check() -> None:
    assert check_quality(GOOD, QualityThresholds()) == []


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n"])
def test_a_document_with_no_text_is_rejected_as_empty_and_only_as_empty(text: str) -> None:
    assert codes(text) == ["empty"]


def test_a_document_shorter_than_the_minimum_is_too_short() -> None:
    reasons = check_quality("Tiny note here.", QualityThresholds(min_chars=20))
    assert [r.code for r in reasons] == ["too_short"]
    assert "15" in reasons[0].message and "20" in reasons[0].message
    assert "GYRE_QUALITY_MIN_CHARS" in reasons[0].message
    assert codes("Tiny note here.", QualityThresholds(min_chars=10)) == []


def test_a_document_longer_than_the_maximum_is_too_long_and_names_the_document_size_setting() -> None:
    reasons = check_quality(GOOD, QualityThresholds(max_chars=100))
    assert [r.code for r in reasons] == ["too_long"]
    assert str(len(GOOD)) in reasons[0].message and "100" in reasons[0].message
    assert "GYRE_MAX_DOCUMENT_CHARS" in reasons[0].message


def test_a_document_of_mostly_digits_and_symbols_has_too_little_text() -> None:
    table = "\n".join(f"{i:04d} | {i * 37 % 1000:03d} | {i * 7.5:.2f} | ==> $$" for i in range(40))
    reasons = check_quality(table, QualityThresholds())
    assert [r.code for r in reasons] == ["too_little_text"]
    assert "0.00" in reasons[0].message and "0.50" in reasons[0].message
    assert "GYRE_QUALITY_MIN_ALPHA_RATIO" in reasons[0].message


def test_the_letter_ratio_counts_letters_of_every_script_and_ignores_spaces() -> None:
    assert measure_quality("ab 12").alpha_ratio == pytest.approx(0.5)
    assert codes("日本語のテキストです。東京都に住んでいます。これは十分な長さの文書です。") == []
    assert codes("ab 12", QualityThresholds(min_chars=1, min_alpha_ratio=0.5)) == []
    assert codes("ab 123", QualityThresholds(min_chars=1, min_alpha_ratio=0.5)) == ["too_little_text"]


def test_a_document_of_mostly_repeated_lines_has_too_many_repeated_lines() -> None:
    text = "\n".join(["Buy cheap watches online now!"] * 8 + ["A different sentence of text.", "And one more line."])
    reasons = check_quality(text, QualityThresholds())
    assert [r.code for r in reasons] == ["too_many_repeated_lines"]
    assert "7 of 10" in reasons[0].message and "0.70" in reasons[0].message and "0.50" in reasons[0].message
    assert "GYRE_QUALITY_MAX_REPEATED_LINE_RATIO" in reasons[0].message


def test_short_repeated_lines_such_as_bullets_do_not_count_as_repeats() -> None:
    text = GOOD + "\n" + "\n".join(["- Yes", "- No", "- Yes", "- Yes", "- No"] * 5)
    assert measure_quality(text).long_lines == 3
    assert codes(text) == []


def test_repeated_lines_are_compared_without_case_or_extra_spaces() -> None:
    measures = measure_quality("The same line here\nTHE SAME   LINE HERE\nthe same line here\nSomething else entirely")
    assert (measures.repeated_long_lines, measures.long_lines) == (2, 4)


def test_the_repeated_line_ratio_at_the_threshold_passes() -> None:
    text = "The same line here\nThe same line here\nAnother line of text\nYet another line here"
    assert measure_quality(text).repeated_line_ratio == pytest.approx(0.25)
    assert codes(text, QualityThresholds(max_repeated_line_ratio=0.25)) == []
    assert codes(text, QualityThresholds(max_repeated_line_ratio=0.2)) == ["too_many_repeated_lines"]


def test_every_failing_check_is_named_not_only_the_first() -> None:
    text = "\n".join(["1234567890 $$$ 1234567890"] * 6)
    reasons = check_quality(text, QualityThresholds(min_chars=200, max_chars=200))
    assert [r.code for r in reasons] == ["too_short", "too_little_text", "too_many_repeated_lines"]
    reasons = check_quality(text, QualityThresholds(min_chars=10, max_chars=20))
    assert [r.code for r in reasons] == ["too_long", "too_little_text", "too_many_repeated_lines"]


@pytest.mark.parametrize(
    "kwargs",
    [{"min_chars": -1}, {"min_chars": 10, "max_chars": 5}, {"min_alpha_ratio": 1.5}, {"max_repeated_line_ratio": -0.1}],
)
def test_impossible_thresholds_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        QualityThresholds(**kwargs)
