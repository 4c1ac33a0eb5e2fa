"""`gyre models` against a real nats-server: the CLI's main in this process, as an operator would type it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from gyre_cli.main import main
from gyre_runtime.models.manifest import load_manifest, verify_manifest
from tests.support.model_folders import write_model_folder
from tests.support.models import EMBEDDER, GENERATOR, built_models
from tests.support.nats_server import NatsServer


@pytest.fixture
def operator_env(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """The CLI's settings (the test server, a data dir of its own: no operator credential in it), and the
    topology declared as `gyre up` does, so that the commands' output is theirs alone (no creation logs)."""
    monkeypatch.setenv("GYRE_NATS_URL", nats_server.url)
    monkeypatch.setenv("GYRE_DATA_DIR", str(tmp_path / "data"))
    assert gyre(capsys, "bus", "declare")[0] == 0


def gyre(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `gyre ARGS...`: exit status, stdout, stderr."""
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


def test_push_list_show_promote_history_rollback_and_pull(
    operator_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    v1 = write_model_folder(first, weights=b"weights 1").model_version
    v2 = write_model_folder(second, weights=b"weights 2").model_version
    assert gyre(capsys, "models", "push", str(first), "--by", "builder")[:2] == (
        0, f"pushed {v1} (generator, 4 files)\n",
    )
    status, out, _ = gyre(capsys, "models", "push", str(second), "--dataset", "feedback-2026-12", "--by", "builder")
    assert status == 0 and v2 in out
    status, out, _ = gyre(capsys, "models", "promote", "generator@production", v1, "--reason", "first release",
                          "--by", "ops")
    assert status == 0 and "#1 " in out and f"promote generator@production -> {v1} by ops: first release" in out
    status, out, _ = gyre(capsys, "models", "promote", "generator@production", "tiny-generator",
                          "--reason", "eval-9 won", "--evaluation", "eval-9", "--by", "ops")
    assert status == 0 and f"-> {v2} (was {v1})" in out and "evaluation eval-9" in out
    status, out, _ = gyre(capsys, "models", "list")
    assert status == 0
    assert [line.split("\t")[0] for line in out.splitlines()] == [v1, v2]
    assert out.splitlines()[1].endswith("generator@production") and "by builder" in out
    status, out, _ = gyre(capsys, "models", "show", "generator@production")
    shown = json.loads(out)
    assert shown["id"] == v2 and shown["aliases"] == ["generator@production"]
    assert shown["lineage"] == {"dataset": "feedback-2026-12"} and shown["manifest"]["license"] == "Apache-2.0"
    status, out, _ = gyre(capsys, "models", "rollback", "generator@production", "--reason", "worse answers",
                          "--by", "oncall")
    assert status == 0 and "#3 " in out and f"rollback generator@production -> {v1} (was {v2}) by oncall" in out
    status, out, _ = gyre(capsys, "models", "history", "generator@production")
    assert [line.split(" ")[0] for line in out.splitlines()] == ["#1", "#2", "#3"]
    assert "eval-9 won" in out.splitlines()[1] and "worse answers" in out.splitlines()[2]
    status, out, _ = gyre(capsys, "models", "pull", "generator@production", str(tmp_path / "replica"))
    pulled = Path(out.strip().split(" in ", 1)[1])
    assert status == 0 and pulled.parent == tmp_path / "replica" / "hub"
    assert load_manifest(pulled).model_version == v1 and verify_manifest(pulled) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nope"), "no model 'nope' in the hub; models: tiny-generator"),
        (("show", "tiny-generator:7:000000000000"), "versions: tiny-generator:1:"),
        (("pull", "generator@production", "dest"), "no alias generator@production; aliases: none set yet"),
        (("history", "generator@candidate"), "no alias generator@candidate; aliases: none set yet"),
        (("promote", "generator@production", "nope", "--reason", "x"), "generator versions: tiny-generator:1:"),
        (("promote", "reranker@production", "tiny-generator", "--reason", "x"), "roles are embedder, generator"),
        (("rollback", "embedder@production", "--reason", "x"), "no alias embedder@production to roll back"),
    ],
)
def test_an_unknown_model_version_or_alias_exits_2_naming_what_exists(
    operator_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str,
) -> None:
    write_model_folder(tmp_path / "m")
    assert gyre(capsys, "models", "push", str(tmp_path / "m"))[0] == 0
    status, out, err = gyre(capsys, "models", *args)
    assert (status, out) == (2, "") and message in err and err.startswith("error: ")


def test_a_refused_promotion_exits_1_with_the_reason(
    operator_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    for n in (1, 2):
        write_model_folder(tmp_path / f"e{n}", name="tiny-embedder", kind="embedding", weights=f"e{n}".encode())
        assert gyre(capsys, "models", "push", str(tmp_path / f"e{n}"))[0] == 0
    e1, e2 = (load_manifest(tmp_path / f"e{n}").model_version for n in (1, 2))
    assert gyre(capsys, "models", "promote", "embedder@production", e1, "--reason", "first")[0] == 0
    status, _, err = gyre(capsys, "models", "promote", "embedder@production", e2, "--reason", "newer")
    assert status == 1 and "run `gyre reindex --embedding-model tiny-embedder --wait`" in err
    assert gyre(capsys, "models", "promote", "embedder@production", e2, "--reason", "newer", "--reindexed")[0] == 0


@pytest.mark.models
def test_the_built_models_are_pushed_and_pulled_byte_for_byte(
    operator_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    store = built_models(EMBEDDER, GENERATOR)
    for name in (EMBEDDER, GENERATOR):
        status, out, err = gyre(capsys, "models", "push", str(store / name))
        assert status == 0, err
    version = load_manifest(store / GENERATOR).model_version
    status, _, err = gyre(capsys, "models", "promote", "generator@production", version, "--reason", "built")
    assert status == 0, err
    status, out, err = gyre(capsys, "models", "pull", "generator@production", str(tmp_path / "replica"))
    assert status == 0, err
    pulled = Path(out.strip().split(" in ", 1)[1])
    assert pulled.parent == tmp_path / "replica" / "hub"
    source_files = sorted(p.relative_to(store / GENERATOR) for p in (store / GENERATOR).rglob("*") if p.is_file())
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*") if p.is_file()) == source_files
    for rel in source_files:
        assert hashlib.sha256((pulled / rel).read_bytes()).digest() == hashlib.sha256(
            (store / GENERATOR / rel).read_bytes()).digest(), rel
    # The model root's own folder is that version: nothing is pulled.
    status, out, _ = gyre(capsys, "models", "pull", version, str(store))
    assert status == 0 and out.strip().endswith(f" in {store / GENERATOR}")
