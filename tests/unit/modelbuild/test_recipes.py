"""Which models `just models` and `just models-candidates` build, and what their hashes cover."""

from __future__ import annotations

import pytest

from gyre_modelbuild import cli, recipes
from gyre_modelbuild.recipes import RECIPES, by_name

DEFAULTS = {"all-minilm-l6-v2", "smollm2-135m-instruct"}
CANDIDATES = {"smollm2-135m-instruct-int8", "smollm2-135m-instruct-fp32", "all-minilm-l6-v2-fp32", "gemma3-270m"}


def test_plain_build_selects_only_the_defaults() -> None:
    assert {r.name for r in by_name(None)} == DEFAULTS
    assert all(r.default for r in by_name([]))


def test_candidates_flag_selects_every_candidate_and_no_default() -> None:
    assert {r.name for r in by_name(None, candidates=True)} == CANDIDATES


def test_only_names_any_recipe_default_or_candidate() -> None:
    assert [r.name for r in by_name(["gemma3-270m", "all-minilm-l6-v2"])] == ["gemma3-270m", "all-minilm-l6-v2"]
    with pytest.raises(SystemExit, match="unknown model"):
        by_name(["no-such-model"])


def test_cli_check_with_candidates_looks_only_at_candidates(tmp_path, capsys) -> None:
    rc = cli.main(["--model-dir", str(tmp_path), "--no-cache", "--check", "--candidates"])
    out = capsys.readouterr().out
    assert rc == cli.NEEDS_BUILD
    assert all(f"{name}: needs a build" in out for name in CANDIDATES)
    assert not any(f"{name}:" in out for name in DEFAULTS)


def test_candidate_weights_change_only_the_candidates_hashes(monkeypatch) -> None:
    before = {r.name: r.hash() for r in RECIPES}
    monkeypatch.setattr(recipes, "CANDIDATE_REQUIREMENT_FILES", ())  # as if no candidate pins existed
    after = {r.name: r.hash() for r in RECIPES}
    assert all(before[name] == after[name] for name in DEFAULTS)
    assert all(before[name] != after[name] for name in CANDIDATES)


def test_every_recipe_has_a_unique_name_and_hash() -> None:
    assert len({r.name for r in RECIPES}) == len(RECIPES)
    assert len({r.hash() for r in RECIPES}) == len(RECIPES)
