"""Paired comparison of two evaluation runs (bootstrap, McNemar, permutation) and the gate."""

from __future__ import annotations

import math
from fractions import Fraction

import msgspec
import numpy as np
import pytest

from gyre_evaluate.comparison import Comparison, Gate, compare, judge, mcnemar, paired_bootstrap, paired_permutation_p
from tests.support.item_scores import item

# --- bootstrap -----------------------------------------------------------------------------------


def test_the_bootstrap_of_identical_runs_is_exactly_zero() -> None:
    values = [0.1, 0.5, 0.9, 0.3, 0.7]
    assert paired_bootstrap(values, values) == (0.0, 0.0, 0.0)


def test_a_clear_improvement_gives_an_interval_excluding_zero() -> None:
    rng = np.random.default_rng(1)
    a = rng.uniform(0.2, 0.6, size=60)
    b = a + 0.2 + rng.normal(0, 0.05, size=60)
    diff, low, high = paired_bootstrap(list(a), list(b))
    assert diff == pytest.approx(float(np.mean(b - a)))
    assert 0 < low < diff < high


def test_noise_around_no_change_gives_an_interval_containing_zero() -> None:
    rng = np.random.default_rng(2)
    a = rng.uniform(0, 1, size=80)
    b = a + rng.normal(0, 0.1, size=80)
    _, low, high = paired_bootstrap(list(a), list(b))
    assert low < 0 < high


def test_the_bootstrap_is_deterministic_for_a_seed() -> None:
    a, b = [0.1, 0.4, 0.2, 0.8, 0.5], [0.3, 0.4, 0.1, 0.9, 0.9]
    assert paired_bootstrap(a, b, seed=7) == paired_bootstrap(a, b, seed=7)
    assert paired_bootstrap(a, b, seed=7) != paired_bootstrap(a, b, seed=8)


def test_the_bootstrap_of_a_percentile_compares_that_percentile() -> None:
    a = [100.0, 200.0, 300.0, 400.0, 500.0]
    b = [50.0, 100.0, 150.0, 200.0, 250.0]
    diff, low, high = paired_bootstrap(a, b, percentile=50)
    assert diff == -150.0
    assert low <= diff <= high < 0


def test_the_bootstrap_needs_paired_values() -> None:
    with pytest.raises(ValueError, match="one length"):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="no paired values"):
        paired_bootstrap([], [])


# --- McNemar and the permutation test ------------------------------------------------------------


def test_ten_discordant_pairs_all_one_way_are_significant() -> None:
    b01, b10, p = mcnemar([False] * 10 + [True] * 5, [True] * 15)
    assert (b01, b10) == (10, 0)
    assert p < 0.01
    assert p == pytest.approx(2 / 2**10)


def test_mcnemar_has_the_exact_binomial_value() -> None:
    a = [False] * 7 + [True] * 2 + [True] * 4
    b = [True] * 7 + [False] * 2 + [True] * 4
    b01, b10, p = mcnemar(a, b)
    assert (b01, b10) == (7, 2)
    assert p == pytest.approx(2 * (1 + 9 + 36) / 512)


def test_mcnemar_without_discordant_pairs_or_with_balanced_ones_finds_no_difference() -> None:
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)
    assert mcnemar([True, False, True, False], [False, True, False, True])[2] == 1.0


def test_the_chi_square_fallback_agrees_with_the_exact_test_for_many_discordant_pairs() -> None:
    b01, b10 = 640, 560
    a = [False] * b01 + [True] * b10
    b = [True] * b01 + [False] * b10
    n = b01 + b10
    exact = float(Fraction(2 * sum(math.comb(n, i) for i in range(b10 + 1)), 2**n))
    _, _, p = mcnemar(a, b)
    assert p == pytest.approx(exact, rel=0.05)
    assert 0.01 < p < 0.05


def test_the_permutation_test_finds_a_clear_improvement_and_not_identical_runs() -> None:
    a = [0.2, 0.3, 0.25, 0.4, 0.35, 0.3, 0.2, 0.45, 0.3, 0.25, 0.3, 0.4]
    b = [value + 0.3 for value in a]
    assert paired_permutation_p(a, b) < 0.01
    assert paired_permutation_p(a, a) == 1.0


# --- compare -------------------------------------------------------------------------------------


def test_runs_are_paired_by_item_id_and_unpaired_items_are_counted() -> None:
    baseline = [item("a", token_f1=0.5), item("b", token_f1=0.5), item("old", token_f1=0.0)]
    candidate = [item("b", token_f1=0.9), item("a", token_f1=0.7), item("new", token_f1=1.0)]
    comparison = compare(baseline, candidate)
    assert (comparison.paired, comparison.only_in_baseline, comparison.only_in_candidate) == (2, 1, 1)
    row = comparison.get("token_f1")
    assert row is not None
    assert (row.baseline, row.n) == (0.5, 2)
    assert row.candidate == pytest.approx(0.8)
    assert row.diff == pytest.approx(0.3)
    assert row.test == "permutation"
    assert row.ci_low is not None and row.ci_high is not None and row.ci_low <= row.diff <= row.ci_high


def test_pass_fail_metrics_are_compared_with_mcnemar() -> None:
    baseline = [item(str(i), must_include=False) for i in range(12)]
    candidate = [item(str(i), must_include=True) for i in range(12)]
    row = compare(baseline, candidate).get("must_include")
    assert row is not None
    assert row.test == "mcnemar"
    assert (row.baseline, row.candidate, row.diff) == (0.0, 1.0, 1.0)
    assert row.p_value is not None and row.p_value < 0.001


def test_a_metric_is_compared_only_over_items_where_it_applies_in_both_runs() -> None:
    baseline = [item("a", recall_at_k=1.0), item("b", recall_at_k=0.0)]
    candidate = [item("a", recall_at_k=1.0), item("b")]
    comparison = compare(baseline, candidate)
    recall = comparison.get("recall_at_k")
    assert recall is not None and recall.n == 1
    assert comparison.get("token_f1") is None
    items = comparison.get("items")
    assert items is not None and items.baseline == items.candidate == 2.0 and items.p_value is None


def test_an_item_scored_twice_in_one_run_is_an_error() -> None:
    with pytest.raises(ValueError, match="scored twice"):
        compare([item("a"), item("a")], [item("a")])


def test_a_comparison_round_trips_through_json() -> None:
    comparison = compare([item("a", token_f1=0.5)], [item("a", token_f1=0.7)])
    assert msgspec.json.decode(msgspec.json.encode(comparison), type=Comparison) == comparison


# --- the gate ------------------------------------------------------------------------------------


def test_a_metric_below_its_floor_fails_with_a_readable_sentence() -> None:
    result = judge({"must_include": 0.41}, Gate(floors={"must_include": 0.5}))
    assert not result.passed
    assert result.failures == ["must_include 0.41 is below the floor 0.50"]


def test_a_floor_on_a_lower_is_better_metric_is_a_ceiling() -> None:
    gate = Gate(floors={"degenerate": 0.05, "total_ms_p95": 2000.0})
    result = judge({"degenerate": 0.12, "total_ms_p95": 1500.0}, gate)
    assert result.failures == ["degenerate 0.12 is above the ceiling 0.05"]
    assert judge({"degenerate": 0.01, "total_ms_p95": 1500.0}, gate).passed


def test_a_floor_on_an_unmeasured_metric_fails() -> None:
    result = judge({}, Gate(floors={"token_f1": 0.3}))
    assert not result.passed
    assert "token_f1 was not measured" in result.failures[0]


def test_falling_more_than_the_tolerance_below_the_baseline_fails() -> None:
    result = judge({"grounded_sentences": 0.85}, Gate(), {"grounded_sentences": 0.93})
    assert result.failures == ["grounded_sentences fell 0.08 below the baseline 0.93 (tolerance 0.05)"]


def test_worsening_within_the_tolerance_or_improving_passes() -> None:
    baseline = {"grounded_sentences": 0.93, "answerable_refused": 0.10}
    assert judge({"grounded_sentences": 0.90, "answerable_refused": 0.14}, Gate(), baseline).passed
    assert judge({"grounded_sentences": 0.99, "answerable_refused": 0.0}, Gate(), baseline).passed


def test_a_lower_is_better_metric_rising_past_its_tolerance_fails() -> None:
    gate = Gate(tolerances={"total_ms_p95": 100.0})
    result = judge({"total_ms_p95": 1250.0, "answerable_refused": 0.2}, gate, {"total_ms_p95": 1000.0,
                                                                                "answerable_refused": 0.1})
    assert result.failures == [
        "answerable_refused rose 0.10 above the baseline 0.10 (tolerance 0.05)",
        "total_ms_p95 rose 250 above the baseline 1000 (tolerance 100)",
    ]


def test_the_default_tolerance_does_not_apply_to_cost_metrics() -> None:
    result = judge({"total_ms_p50": 5000.0}, Gate(), {"total_ms_p50": 100.0})
    assert result.passed


def test_a_change_just_past_the_tolerance_is_written_with_enough_digits_to_show_it() -> None:
    result = judge({"token_f1": 0.5}, Gate(tolerances={"token_f1": 0.05}), {"token_f1": 0.5501})
    assert result.failures == ["token_f1 fell 0.0501 below the baseline 0.55 (tolerance 0.0500)"]


def test_a_gate_on_an_unknown_metric_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown metrics in the gate: must_inclde"):
        Gate(floors={"must_inclde": 0.5})
    with pytest.raises(ValueError, match="negative"):
        Gate(tolerances={"token_f1": -0.1})


def test_a_gate_converts_from_its_configuration() -> None:
    gate = msgspec.convert({"floors": {"must_include": 0.5}, "default_tolerance": None}, Gate)
    assert judge({"must_include": 0.4, "token_f1": 0.0}, gate, {"token_f1": 0.9}).failures == [
        "must_include 0.40 is below the floor 0.50"
    ]
