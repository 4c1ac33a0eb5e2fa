"""`gyre models compare`: candidates named, the default chosen by its written rule, the report and chart written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gyre_cli.compare.candidates import Candidate, CandidateError, parse_candidate
from gyre_cli.compare.report import chart, choose, render
from gyre_cli.compare.runner import Row, answer_rate, peak_rss


def write_model(root: Path, name: str, kind: str, **extra: object) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"x" * 1000)
    manifest = {
        "name": name, "version": "1", "kind": kind, "source_package": "pkg", "source_version": "0.1",
        "quantisation": "int4", "file": "model.onnx", "sha256": "0" * 64, "size": 1000,
        "files": {"model.onnx": {"sha256": "0" * 64, "size": 1000}}, "recipe_hash": "r", "built_at": "now",
        "license": "Apache-2.0", **extra,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_a_model_folder_is_a_candidate_of_the_role_its_manifest_names(tmp_path: Path) -> None:
    write_model(tmp_path, "gen", "generation", context_length=8192)
    write_model(tmp_path, "emb", "embedding", dimension=384)
    gen = parse_candidate("gen", tmp_path)
    emb = parse_candidate("emb", tmp_path)
    assert (gen.role, gen.env["GYRE_GENERATION_MODEL"], gen.local) == ("generator", "gen", True)
    assert (emb.role, emb.env) == ("embedder", {"GYRE_EMBEDDING_MODEL": "emb"})
    assert gen.facts["licence"] == "Apache-2.0" and gen.facts["context length"] == "8192 tokens"
    assert emb.facts["dimension"] == "384"
    assert gen.disk_bytes is not None and gen.disk_bytes > 1000


def test_an_unbuilt_model_is_refused_naming_what_is_built(tmp_path: Path) -> None:
    write_model(tmp_path, "gen", "generation")
    with pytest.raises(CandidateError, match="built: gen"):
        parse_candidate("nope", tmp_path)


def test_an_endpoint_is_a_remote_generator_and_a_malformed_one_is_refused(tmp_path: Path) -> None:
    remote = parse_candidate("openai:llama3.1@http://gpu-box:8000/v1", tmp_path)
    assert remote.role == "generator" and not remote.local
    assert remote.env["GYRE_OPENAI_BASE_URL"] == "http://gpu-box:8000/v1"
    assert remote.env["GYRE_OPENAI_MODEL"] == "llama3.1"
    with pytest.raises(CandidateError, match="openai:MODEL@BASE_URL"):
        parse_candidate("openai:llama3.1", tmp_path)


def gen_row(label: str, correct: float, cpu: float, degenerate: float = 0.0, local: bool = True) -> Row:
    candidate = Candidate(label=label, role="generator", env={}, local=local, facts={"licence": "MIT"},
                          disk_bytes=2**20)
    return Row(candidate, metrics={"must_include": correct, "cpu_s_mean": cpu, "degenerate": degenerate,
                                   "total_ms_p50": 1000 * cpu, "ttft_ms_p50": 900 * cpu}, peak_rss_bytes=300 * 2**20)


def test_the_most_correct_generator_is_chosen_unless_a_near_tie_costs_less() -> None:
    rows = [gen_row("big", 0.80, 4.0), gen_row("small", 0.78, 1.0), gen_row("worse", 0.60, 0.5)]
    chosen, why = choose(rows, "generator")
    assert chosen is not None and chosen.candidate.label == "small"
    assert "within 0.03" in why and "big" in why
    rows = [gen_row("big", 0.90, 4.0), gen_row("small", 0.78, 1.0)]
    chosen, _ = choose(rows, "generator")
    assert chosen is not None and chosen.candidate.label == "big"


def test_degenerate_failed_and_remote_generators_are_never_the_default() -> None:
    failed = gen_row("failed", 0.99, 0.1)
    failed.error = "ConnectError: unreachable"
    rows = [gen_row("loops", 0.95, 1.0, degenerate=0.1), failed, gen_row("remote", 0.99, 0.1, local=False),
            gen_row("plain", 0.5, 2.0)]
    chosen, _ = choose(rows, "generator")
    assert chosen is not None and chosen.candidate.label == "plain"
    assert choose([failed], "generator")[0] is None


def test_the_report_has_every_row_the_choice_and_the_selection_factors(tmp_path: Path) -> None:
    failed = gen_row("endpoint", 0.0, 0.0, local=False)
    failed.error = "ConnectError: all connection attempts failed"
    embedder = Row(Candidate(label="emb", role="embedder", env={}, local=True, facts={"dimension": "384"}),
                   metrics={"ndcg_at_10": 0.7, "recall_at_k": 0.9}, ingest_s=12.0, peak_rss_bytes=200 * 2**20)
    rows = [gen_row("a", 0.7, 2.0), failed, embedder]
    text = render(rows, set_label="gate (24 items)", chart_name="model-selection.png", command="gyre models compare")
    assert "| a | 0.700 |" in text
    assert "| endpoint | failed: ConnectError" in text
    assert "**Choice: a**" in text and "**Choice: emb**" in text
    for factor in ("privacy", "licence", "long-term viability", "customisation", "scalability"):
        assert factor in text
    png = tmp_path / "chart.png"
    assert chart(rows, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_answer_rate_and_peak_memory() -> None:
    items = [{"score": {"completion_tokens": 50, "total_ms": 1000.0}}, {"score": {"completion_tokens": 0}},
             {"completion_tokens": 30, "total_ms": 500.0}, {"error": "timeout", "score": None}]
    assert answer_rate(items) == pytest.approx(55.0)
    assert answer_rate([]) is None
    import os

    rss = peak_rss(os.getpid())
    assert rss is None or rss > 10 * 2**20


def test_an_unreachable_endpoint_fails_its_row_before_any_stack_starts(tmp_path: Path) -> None:
    from gyre_cli.compare.runner import endpoint_problem, run_candidate
    from tests.support.nats_server import free_port

    remote = parse_candidate(f"openai:m@http://127.0.0.1:{free_port()}/v1", tmp_path)
    problem = endpoint_problem(remote, timeout_s=2)
    assert problem is not None and problem.startswith("endpoint unreachable")
    row = run_candidate(remote, items=[], documents_root=tmp_path, documents=[], model_root=tmp_path)
    assert not row.ok and "unreachable" in (row.error or "") and row.seconds < 30
    write_model(tmp_path, "gen", "generation")
    assert endpoint_problem(parse_candidate("gen", tmp_path)) is None


def test_on_a_small_set_a_gap_within_its_sampling_error_goes_to_the_cheaper_generator() -> None:
    small, big = gen_row("small", 0.667, 1.8), gen_row("big", 0.833, 4.5)
    for row in (small, big):
        row.metrics["answerable_items"] = 18.0  # a 24-item gate set: 3 answers apart is noise
    chosen, why = choose([small, big], "generator")
    assert chosen is not None and chosen.candidate.label == "small" and "sampling error" in why
    for row in (small, big):
        row.metrics["answerable_items"] = 1600.0  # the same gap on a large set is real
    chosen, _ = choose([small, big], "generator")
    assert chosen is not None and chosen.candidate.label == "big"
