"""Feedback tallies count each rating once, by sentiment."""

from __future__ import annotations

from gyre_improve.tallies import RECENT_IDS, Tally, add_rating, sentiment


def test_thumbs_and_stars_map_to_sentiment() -> None:
    assert [sentiment(r) for r in (-1, 1, 2, 3, 4, 5)] == [
        "negative", "positive", "negative", "neutral", "positive", "positive",
    ]


def test_a_rating_is_counted_once_even_when_redelivered() -> None:
    tally = add_rating(Tally(subject="p:1"), "f1", 1)
    assert tally is not None and (tally.count, tally.positive) == (1, 1)
    assert add_rating(tally, "f1", 1) is None
    tally = add_rating(tally, "f2", -1)
    assert tally is not None and (tally.count, tally.positive, tally.negative, tally.rating_sum) == (2, 1, 1, 0)


def test_the_memory_of_counted_ids_is_bounded() -> None:
    tally = Tally(subject="m")
    for i in range(RECENT_IDS + 10):
        new = add_rating(tally, f"f{i}", 5)
        assert new is not None
        tally = new
    assert tally.count == RECENT_IDS + 10
    assert len(tally.recent_feedback_ids) == RECENT_IDS
