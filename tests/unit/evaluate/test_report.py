"""The markdown report of an evaluation run, the worst items it shows, and the comparison chart."""

from __future__ import annotations

from pathlib import Path

from gyre_evaluate.comparison import Comparison, GateResult, MetricComparison, compare
from gyre_evaluate.report import comparison_chart, markdown_report, pick_worst_items
from tests.support.item_scores import item

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SUMMARY = {"set": "gyre-docs", "version": 3, "settings": {"top_k": 5, "prompt": "default:2"}}


def two_runs() -> Comparison:
    baseline = [item(str(i), must_include=i % 3 == 0, token_f1=0.4, total_ms=900.0) for i in range(12)]
    candidate = [item(str(i), must_include=i % 3 != 1, token_f1=0.6, total_ms=700.0) for i in range(12)]
    return compare(baseline, candidate, resamples=500)


def test_the_header_names_the_set_its_version_and_every_setting() -> None:
    report = markdown_report(SUMMARY, {"must_include": 0.5})
    assert report.startswith("# Evaluation of gyre-docs (version 3)\n")
    assert "| settings.top_k | 5 |" in report
    assert "| settings.prompt | default:2 |" in report


def test_the_metrics_table_gives_each_value_its_direction_and_meaning() -> None:
    report = markdown_report(SUMMARY, {"must_include": 0.5, "total_ms_p95": 1234.4, "items": 40.0})
    assert "| must_include | 0.500 | higher | share of answerable items" in report
    assert "| total_ms_p95 | 1234 | lower |" in report
    assert "| items | 40 |  |" in report


def test_the_comparison_table_shows_diff_interval_p_and_verdict() -> None:
    report = markdown_report(SUMMARY, {"token_f1": 0.6}, comparison=two_runs())
    section = report.split("## Comparison with the baseline", 1)[1]
    assert "12 paired items; 0 only in the baseline, 0 only in the candidate." in section
    token_f1 = next(line for line in section.splitlines() if line.startswith("| token_f1 |"))
    assert "| 0.400 | 0.600 | +0.200 | [+0.200, +0.200] |" in token_f1
    assert token_f1.endswith("| 12 | better |")
    latency = next(line for line in section.splitlines() if line.startswith("| total_ms_p50 |"))
    assert "| -200 |" in latency and latency.endswith("| better |")
    assert "| 95% CI | p |" in section


def test_the_gate_verdict_lists_every_failure() -> None:
    failed = GateResult(passed=False, failures=["must_include 0.41 is below the floor 0.50"])
    report = markdown_report(SUMMARY, {}, gate_result=failed)
    assert "## Gate: FAILED\n\n- must_include 0.41 is below the floor 0.50" in report
    assert "## Gate: passed" in markdown_report(SUMMARY, {}, gate_result=GateResult(passed=True, failures=[]))


def test_worst_items_show_question_answer_and_what_was_expected() -> None:
    worst = item("q7", question="Which port?", answer="It uses | pipes\non two lines", reference="Port 8080.",
                 must_include_terms=["8080"], must_include=False, token_f1=0.1)
    report = markdown_report(SUMMARY, {}, worst_items=[worst])
    assert "### q7" in report
    assert "**Question:** Which port?" in report
    assert "> It uses | pipes\n> on two lines" in report
    assert "**Expected:** Port 8080.; must include: 8080" in report
    assert "missing must-include terms" in report


def test_table_cells_escape_pipes_and_line_breaks() -> None:
    report = markdown_report({"set": "a", "note": "x | y\nz"}, {})
    assert "| note | x \\| y z |" in report


def test_the_worst_items_are_failures_first_and_never_a_perfect_item() -> None:
    perfect = item("perfect", must_include=True, token_f1=1.0, grounded_sentences=1.0)
    weak = item("weak", must_include=True, token_f1=0.5)
    refused = item("refused", refused=True, answerable_refused=True, must_include=False, token_f1=0.0)
    looping = item("looping", degenerate=True)
    assert [x.item_id for x in pick_worst_items([perfect, weak, looping, refused])] == ["refused", "looping", "weak"]
    assert [x.item_id for x in pick_worst_items([perfect, weak, looping, refused], limit=1)] == ["refused"]


def test_the_comparison_chart_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "comparison.png"
    comparison_chart(two_runs(), path)
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5000


def test_a_chart_without_any_0_to_1_metric_is_still_a_png(tmp_path: Path) -> None:
    latency_only = Comparison(
        metrics=[MetricComparison(metric="total_ms_p50", baseline=900.0, candidate=700.0, diff=-200.0, ci_low=-250.0,
                                  ci_high=-150.0, p_value=0.01, n=12, test="permutation")],
        paired=12, only_in_baseline=0, only_in_candidate=0, confidence=0.95)
    path = tmp_path / "empty.png"
    comparison_chart(latency_only, path)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
