"""The committed evaluation corpora and the gate set load and hold what a benchmark and the CI gate need.

These read only committed files: the Debian documentation packages need not be installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gyre_runtime.state.golden_sets import parse_golden_jsonl
from tests.eval.corpora import (
    CORPORA_DIR,
    Corpus,
    PackageMissing,
    corpus_names,
    ensure_package,
    load_corpus,
    load_gate,
)


def test_both_debian_documentation_corpora_are_committed() -> None:
    assert corpus_names() == ["git-doc", "python-doc"]


@pytest.mark.parametrize("name", corpus_names())
def test_a_corpus_loads_with_enough_items_of_each_sort(name: str) -> None:
    corpus = load_corpus(name)
    assert corpus.name == name and corpus.package and corpus.package_version
    assert corpus.root.is_absolute()
    assert 80 <= len(corpus.documents) <= 120
    assert len(set(corpus.documents)) == len(corpus.documents)
    assert len(corpus.items) >= 150
    assert sum(not item.answerable for item in corpus.items) >= 30
    checked = [item for item in corpus.items if item.checked]
    assert len(checked) >= 40
    assert all(item.origin == "hand" for item in checked)
    assert sum(item.origin == "synthetic" for item in corpus.items) >= 50


@pytest.mark.parametrize("name", corpus_names())
def test_every_relevant_id_of_a_corpus_is_one_of_its_documents(name: str) -> None:
    corpus = load_corpus(name)
    relevant = {ident for item in corpus.items for ident in item.relevant}
    assert relevant and relevant <= set(corpus.documents)
    assert all(item.relevant for item in corpus.items if item.answerable)


@pytest.mark.parametrize("name", corpus_names())
def test_a_corpus_asks_each_question_once_and_holds_its_hand_items_first(name: str) -> None:
    corpus = load_corpus(name)
    questions = [item.question.lower() for item in corpus.items]
    assert len(set(questions)) == len(questions)
    hand = parse_golden_jsonl((CORPORA_DIR / name / "hand.jsonl").read_bytes())
    assert corpus.items[: len(hand)] == hand
    assert all(item.must_include for item in hand if item.answerable)


@pytest.mark.parametrize("name", corpus_names())
def test_a_corpus_has_a_readme_naming_its_package_and_licence(name: str) -> None:
    corpus = load_corpus(name)
    readme = (CORPORA_DIR / name / "README.md").read_text(encoding="utf-8")
    assert corpus.package is not None and corpus.package in readme
    assert "licen" in readme.lower() and "build_corpora" in readme


def test_the_gate_set_is_small_fixed_and_hand_checked() -> None:
    gate = load_gate()
    assert load_corpus("gate") == gate
    assert gate.package is None and gate.root.is_dir()
    assert 12 <= len(gate.documents) <= 15
    assert 22 <= len(gate.items) <= 26
    assert sum(not item.answerable for item in gate.items) == 6
    assert all(item.checked and item.origin == "hand" for item in gate.items)
    assert (gate.root.parent / "NOTICE").read_text(encoding="utf-8").count("Python Software Foundation") >= 2


def test_the_gate_documents_exist_are_short_and_contain_every_expected_term() -> None:
    gate = load_gate()
    for document in gate.documents:
        assert gate.path(document).stat().st_size <= 4096, document
    for item in gate.items:
        assert set(item.relevant) <= set(gate.documents), item.id
        text = " ".join(gate.path(document).read_text(encoding="utf-8") for document in item.relevant).lower()
        for alternatives in item.alternatives():
            assert any(alternative.lower() in text for alternative in alternatives), (item.id, alternatives)


def test_a_missing_package_that_cannot_be_installed_here_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = Corpus(name="x", root=tmp_path / "absent", documents=["a.html"], items=[], package="nonexistent-doc",
                    package_version="1.0")
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(PackageMissing, match="install the Debian package nonexistent-doc"):
        ensure_package(corpus)


def test_installed_pages_need_no_package_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.html").write_text("<p>a</p>")
    corpus = Corpus(name="x", root=tmp_path, documents=["a.html"], items=[], package="nonexistent-doc",
                    package_version="1.0")
    monkeypatch.setattr("shutil.which", lambda _name: None)  # no apt-get, no dpkg-query
    assert ensure_package(corpus) is None
    assert ensure_package(load_gate()) is None
