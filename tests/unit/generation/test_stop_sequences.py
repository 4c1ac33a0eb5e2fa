"""Stop sequences applied by the backend (onnx, Triton): text is released only once it cannot become one."""

from __future__ import annotations

from gyre_runtime.generation.stops import StopSequences


def feed_all(stops: StopSequences, deltas: list[str]) -> list[str]:
    return [stops.feed(delta) for delta in deltas]


def test_without_stop_sequences_every_delta_is_released_at_once() -> None:
    stops = StopSequences(["", ""])
    assert feed_all(stops, ["Par", "is", "."]) == ["Par", "is", "."]
    assert stops.rest() == "" and not stops.stopped


def test_the_tail_that_could_become_a_stop_sequence_is_held_until_it_cannot() -> None:
    stops = StopSequences(["END"])
    # Two characters are held: "EN" could still be the start of "END".
    assert feed_all(stops, ["Hello", " wor", "ld"]) == ["Hel", "lo w", "or"]
    assert stops.rest() == "ld"
    assert not stops.stopped


def test_a_stop_sequence_split_across_deltas_cuts_the_text_just_before_it() -> None:
    stops = StopSequences(["\n\n", "END"])
    released = feed_all(stops, ["The answer", " is 4.E", "N", "D and more"])
    assert "".join(released) == "The answer is 4."
    assert stops.stopped
    assert stops.feed("after the stop") == "" and stops.rest() == ""


def test_the_earliest_of_several_stop_sequences_wins() -> None:
    stops = StopSequences(["of Fr", "Paris"])
    assert "".join(feed_all(stops, ["The capital of France is Paris."])) == "The capital "
    assert stops.stopped
