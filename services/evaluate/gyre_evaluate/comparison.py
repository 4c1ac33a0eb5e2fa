"""Two runs of a golden set compared item by item with statistics, and the gate a run must pass.

Runs are paired by item id: the same question answered by the baseline and by the candidate, so
the noise of hard and easy items cancels out. Differences are candidate - baseline. Confidence
intervals come from a paired bootstrap; p-values from McNemar's exact test for pass/fail metrics
and from a paired sign-flip permutation test for the others. Directions come from ``METRICS``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import msgspec
import numpy as np
import numpy.typing as npt

from gyre_contracts.evaluate import METRICS
from gyre_evaluate.metrics import ItemScore, item_count, item_value, summarize

# Beyond this many discordant pairs the exact binomial sum is slow and the chi-square is accurate.
_MCNEMAR_EXACT_LIMIT = 1000
# Resampled rows drawn at once: bounds the memory of a resampling to about 8 MB of indices.
_BLOCK_CELLS = 1_000_000

Values = npt.NDArray[np.float64]


def _paired_arrays(a: Sequence[float], b: Sequence[float]) -> tuple[Values, Values]:
    a_values, b_values = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_values.shape != b_values.shape or a_values.ndim != 1:
        raise ValueError(f"paired values need two sequences of one length, not {len(a)} and {len(b)}")
    if a_values.size == 0:
        raise ValueError("no paired values")
    return a_values, b_values


def _statistic(values: Values, percentile: float | None) -> Values:
    """The statistic of each row (mean, or the given percentile)."""
    if percentile is None:
        return np.asarray(values.mean(axis=-1))
    return np.asarray(np.percentile(values, percentile, axis=-1))


def _blocks(resamples: int, n: int) -> Iterable[int]:
    rows = max(1, _BLOCK_CELLS // n)
    for start in range(0, resamples, rows):
        yield min(rows, resamples - start)


def _resampled_differences(
    a: Sequence[float],
    b: Sequence[float],
    draw: Callable[[np.random.Generator, Values, Values, int], tuple[Values, Values]],
    resamples: int,
    seed: int,
    percentile: float | None,
) -> tuple[float, Values]:
    """The observed difference b - a of the statistic, and its value in each of ``resamples`` redraws.

    ``draw(rng, a, b, rows)`` gives ``rows`` redrawn (a, b) pairs of arrays; redraws are made in blocks
    of bounded size, so that a long run does not hold resamples x items values at once.
    """
    a_values, b_values = _paired_arrays(a, b)
    observed = float(_statistic(b_values, percentile) - _statistic(a_values, percentile))
    rng = np.random.default_rng(seed)
    differences: list[Values] = []
    for rows in _blocks(resamples, a_values.size):
        first, second = draw(rng, a_values, b_values, rows)
        differences.append(_statistic(second, percentile) - _statistic(first, percentile))
    return observed, np.concatenate(differences)


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
    percentile: float | None = None,
) -> tuple[float, float, float]:
    """(observed difference b - a, low and high ends of its percentile-bootstrap confidence interval).

    ``a[i]`` and ``b[i]`` are one item's values in the two runs; items are resampled as pairs. The
    difference is of means, or of the given percentile (a latency p95) over the same resampled items.
    Seeded: the same inputs give the same interval.
    """

    def resample_pairs(rng: np.random.Generator, first: Values, second: Values, rows: int) -> tuple[Values, Values]:
        picks = rng.integers(0, first.size, size=(rows, first.size))
        return first[picks], second[picks]

    observed, resampled = _resampled_differences(a, b, resample_pairs, resamples, seed, percentile)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return observed, float(low), float(high)


def paired_permutation_p(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 2000, seed: int = 0, percentile: float | None = None
) -> float:
    """Two-sided p-value of the difference b - a under "the runs are exchangeable": within each pair
    the two values are swapped at random (a sign-flip test for means)."""

    def swap_within_pairs(rng: np.random.Generator, first: Values, second: Values, rows: int) -> tuple[Values, Values]:
        swap = rng.random((rows, first.size)) < 0.5
        return np.where(swap, second, first), np.where(swap, first, second)

    observed, permuted = _resampled_differences(a, b, swap_within_pairs, resamples, seed, percentile)
    observed = abs(observed)
    # A relative margin: a difference equal to the observed one up to float rounding counts as extreme.
    as_extreme = int(np.count_nonzero(np.abs(permuted) >= observed - 1e-12 * max(1.0, observed)))
    return (as_extreme + 1) / (resamples + 1)


def mcnemar(a_pass: Sequence[bool], b_pass: Sequence[bool]) -> tuple[int, int, float]:
    """(b01, b10, two-sided p) of McNemar's test on paired pass/fail outcomes.

    b01 counts items a failed and b passed, b10 items a passed and b failed. The p-value is the exact
    binomial one; past ``_MCNEMAR_EXACT_LIMIT`` discordant pairs, the chi-square with continuity
    correction.
    """
    if len(a_pass) != len(b_pass):
        raise ValueError(f"paired outcomes need two sequences of one length, not {len(a_pass)} and {len(b_pass)}")
    b01 = sum(1 for x, y in zip(a_pass, b_pass, strict=True) if not x and y)
    b10 = sum(1 for x, y in zip(a_pass, b_pass, strict=True) if x and not y)
    discordant = b01 + b10
    if discordant == 0:
        return b01, b10, 1.0
    if discordant > _MCNEMAR_EXACT_LIMIT:
        statistic = max(abs(b01 - b10) - 1, 0) ** 2 / discordant
        # The chi-square survival function with one degree of freedom.
        return b01, b10, min(1.0, math.erfc(math.sqrt(statistic / 2)))
    tail = sum(math.comb(discordant, i) for i in range(min(b01, b10) + 1))
    return b01, b10, min(1.0, 2 * tail / 2**discordant)


class MetricComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One metric of two runs over the items both scored (``n``) where the metric applies to both.

    ``ci_low``/``ci_high`` bound ``diff`` (candidate - baseline); ``None`` for item counts.
    """

    metric: str
    baseline: float
    candidate: float
    diff: float
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    test: str | None  # "mcnemar", "permutation" or None


class Comparison(msgspec.Struct, frozen=True, kw_only=True):
    """The metrics of a candidate run against a baseline, in ``METRICS`` order."""

    metrics: list[MetricComparison]
    paired: int
    only_in_baseline: int
    only_in_candidate: int
    confidence: float

    def get(self, metric: str) -> MetricComparison | None:
        return next((row for row in self.metrics if row.metric == metric), None)


def _by_id(scores: Iterable[ItemScore], run: str) -> dict[str, ItemScore]:
    by_id: dict[str, ItemScore] = {}
    for score in scores:
        if score.item_id in by_id:
            raise ValueError(f"item {score.item_id!r} is scored twice in the {run} run")
        by_id[score.item_id] = score
    return by_id


def _compare_count(metric: str, pairs: Sequence[tuple[ItemScore, ItemScore]]) -> MetricComparison:
    # Paired items are the same golden items, so both runs have the same counts.
    n = item_count(metric, [base for base, _ in pairs])
    return MetricComparison(
        metric=metric, baseline=float(n), candidate=float(n), diff=0.0, ci_low=None, ci_high=None, p_value=None,
        n=n, test=None)


def compare(
    baseline_scores: Iterable[ItemScore],
    candidate_scores: Iterable[ItemScore],
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Comparison:
    """Every metric of the candidate run against the baseline, over the items both runs scored.

    A metric is compared over the items where it applies in both runs, and left out where there is
    none. Baseline and candidate values are those of the paired items, so ``diff`` is what the
    interval bounds, not a difference diluted by items only one run scored.
    """
    baseline, candidate = _by_id(baseline_scores, "baseline"), _by_id(candidate_scores, "candidate")
    pairs = [(baseline[item_id], candidate[item_id]) for item_id in baseline if item_id in candidate]
    rows: list[MetricComparison] = []
    for name, spec in METRICS.items():
        if spec.statistic == "count":
            rows.append(_compare_count(name, pairs))
            continue
        values = [
            (a, b) for base, cand in pairs
            if (a := item_value(base, name)) is not None and (b := item_value(cand, name)) is not None
        ]
        if not values:
            continue
        a_values, b_values = [a for a, _ in values], [b for _, b in values]
        percentile = spec.percentile
        base_value, cand_value = summarize(name, a_values), summarize(name, b_values)
        _, low, high = paired_bootstrap(
            a_values, b_values, resamples=resamples, seed=seed, confidence=confidence, percentile=percentile)
        if spec.statistic == "share":
            p_value = mcnemar([a > 0 for a in a_values], [b > 0 for b in b_values])[2]
            test = "mcnemar"
        else:
            p_value = paired_permutation_p(a_values, b_values, resamples=resamples, seed=seed, percentile=percentile)
            test = "permutation"
        rows.append(MetricComparison(
            metric=name, baseline=base_value, candidate=cand_value, diff=cand_value - base_value, ci_low=low,
            ci_high=high, p_value=p_value, n=len(values), test=test))
    return Comparison(
        metrics=rows,
        paired=len(pairs),
        only_in_baseline=sum(1 for item_id in baseline if item_id not in candidate),
        only_in_candidate=sum(1 for item_id in candidate if item_id not in baseline),
        confidence=confidence,
    )


# --- the gate ------------------------------------------------------------------------------------


class Gate(msgspec.Struct, frozen=True, kw_only=True):
    """What a run must reach to pass.

    ``floors``: per metric, the worst acceptable value: a minimum where higher is better, a maximum
    (a ceiling) where lower is better. ``tolerances``: per metric, how much worse than the baseline
    run it may be, in the metric's own units. ``default_tolerance`` applies to the 0..1 metrics
    without a tolerance of their own (``None``: only the listed tolerances are checked); the cost
    metrics (ms, tokens) are in other units, so they are only checked against the baseline when listed.
    """

    floors: dict[str, float] = msgspec.field(default_factory=dict)
    tolerances: dict[str, float] = msgspec.field(default_factory=dict)
    default_tolerance: float | None = 0.05

    def __post_init__(self) -> None:
        unknown = sorted((set(self.floors) | set(self.tolerances)) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics in the gate: {', '.join(unknown)}; known: {', '.join(METRICS)}")
        negative = sorted(name for name, value in self.tolerances.items() if value < 0)
        if negative or (self.default_tolerance is not None and self.default_tolerance < 0):
            raise ValueError(f"tolerances cannot be negative: {', '.join(negative) or 'default_tolerance'}")

    def tolerance(self, metric: str) -> float | None:
        if metric in self.tolerances:
            return self.tolerances[metric]
        return self.default_tolerance if METRICS[metric].unit == "fraction" else None


class GateResult(msgspec.Struct, frozen=True, kw_only=True):
    passed: bool
    failures: list[str]


def _format(metric: str, value: float, digits: int = 2) -> str:
    unit = METRICS[metric].unit
    if unit in ("ms", "items"):
        return f"{value:.0f}"
    if unit == "tokens":
        return f"{value:.1f}"
    return f"{value:.{digits}f}"


def _format_pair(metric: str, change: float, tolerance: float) -> tuple[str, str]:
    """The change and the tolerance written with enough digits that an excess is visible."""
    for digits in range(2, 7):
        change_text, tolerance_text = _format(metric, change, digits), _format(metric, tolerance, digits)
        if change_text != tolerance_text:
            break
    return change_text, tolerance_text


def judge(metrics: Mapping[str, float], gate: Gate, baseline_metrics: Mapping[str, float] | None = None) -> GateResult:
    """Whether the run's metrics pass the gate, with one readable sentence per failure."""
    failures: list[str] = []
    for name, floor in gate.floors.items():
        higher = METRICS[name].higher_is_better
        limit = "floor" if higher else "ceiling"
        if name not in metrics:
            failures.append(f"{name} was not measured, so its {limit} {_format(name, floor)} cannot be checked")
            continue
        value = metrics[name]
        if (value < floor) if higher else (value > floor):
            side = "below" if higher else "above"
            failures.append(f"{name} {_format(name, value)} is {side} the {limit} {_format(name, floor)}")
    if baseline_metrics is not None:
        for name, spec in METRICS.items():
            tolerance = gate.tolerance(name)
            if tolerance is None or name not in metrics or name not in baseline_metrics:
                continue
            base = baseline_metrics[name]
            worsening = (base - metrics[name]) if spec.higher_is_better else (metrics[name] - base)
            # Float noise on equal values (0.1 + 0.2 against 0.3) is not a worsening.
            if worsening > tolerance + 1e-9:
                change, allowed = _format_pair(name, worsening, tolerance)
                moved = "fell" if spec.higher_is_better else "rose"
                side = "below" if spec.higher_is_better else "above"
                failures.append(
                    f"{name} {moved} {change} {side} the baseline {_format(name, base)} (tolerance {allowed})")
    return GateResult(passed=not failures, failures=failures)
