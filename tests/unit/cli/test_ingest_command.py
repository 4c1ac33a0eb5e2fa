"""`gyre ingest`'s plain parts: finding files, ids, the state file's skip rules, fetch limits, the summary."""

from __future__ import annotations

import asyncio
import io
import json
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import ClassVar

import httpx
import pytest

from gyre_cli.client import read_local_api_key
from gyre_cli.ingest_inputs import (
    DEFAULT_INCLUDE,
    FileInput,
    InputError,
    LoadError,
    UrlInput,
    collect_inputs,
    discover_files,
    fetch_url,
    read_file,
)
from gyre_cli.ingest_progress import ProgressBar
from gyre_cli.ingest_state import IngestState, StateEntry, plan_for, state_scope
from gyre_cli.ingest_summary import Outcome, format_summary, summarise
from gyre_contracts.media_types import guess_content_type
from tests.support.web import StaticPages, serving


def tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return tree(
        tmp_path / "corpus",
        {
            "README.md": "# r",
            "guide/intro.md": "# i",
            "guide/setup.txt": "s",
            "guide/drafts/wip.md": "w",
            "guide/img/logo.png": b"\x89PNG",
            "reports/q1.pdf": b"%PDF",
            "reports/q1.PDF.bak": "x",
            "data/rows.csv": "a,b",
            "data/rows.jsonl": "{}",
            ".git/config": "[core]",
            "guide/.hidden.md": "h",
            "page.HTML": "<p>",
        },
    )


# ---------------------------------------------------------------- discovering files


def test_folders_are_walked_recursively_for_the_default_document_types(corpus: Path) -> None:
    assert discover_files(corpus) == [
        PurePosixPath(p)
        for p in [
            "README.md", "data/rows.csv", "data/rows.jsonl", "guide/drafts/wip.md", "guide/intro.md",
            "guide/setup.txt", "page.HTML", "reports/q1.pdf",
        ]
    ]


def test_include_globs_replace_the_defaults_and_match_names_or_paths(corpus: Path) -> None:
    assert discover_files(corpus, include=["*.md"]) == [
        PurePosixPath("README.md"), PurePosixPath("guide/drafts/wip.md"), PurePosixPath("guide/intro.md")
    ]
    assert discover_files(corpus, include=["guide/*.md"]) == [
        PurePosixPath("guide/drafts/wip.md"), PurePosixPath("guide/intro.md")
    ]  # fnmatch's * crosses folders, as in `find -path`
    assert discover_files(corpus, include=["*"]) == sorted(
        PurePosixPath(p) for p in [
            "README.md", "data/rows.csv", "data/rows.jsonl", "guide/drafts/wip.md", "guide/img/logo.png",
            "guide/intro.md", "guide/setup.txt", "page.HTML", "reports/q1.PDF.bak", "reports/q1.pdf",
        ]
    )


def test_excluded_folders_are_not_entered_and_excluded_files_are_skipped(corpus: Path) -> None:
    found = discover_files(corpus, DEFAULT_INCLUDE, exclude=["drafts", "*.csv", "reports/*"])
    assert found == [
        PurePosixPath(p) for p in ["README.md", "data/rows.jsonl", "guide/intro.md", "guide/setup.txt", "page.HTML"]
    ]


def test_hidden_files_and_folders_are_taken_only_when_asked(corpus: Path) -> None:
    with_hidden = discover_files(corpus, include=["*.md", "config"], hidden=True)
    assert PurePosixPath("guide/.hidden.md") in with_hidden and PurePosixPath(".git/config") in with_hidden
    without = discover_files(corpus, include=["*.md", "config"])
    assert PurePosixPath("guide/.hidden.md") not in without and PurePosixPath(".git/config") not in without


def test_document_ids_are_paths_under_the_given_folder_file_names_or_urls(corpus: Path) -> None:
    inputs = collect_inputs(
        [str(corpus / "guide"), str(corpus / "README.md"), "https://example.org/a/page.html?x=1"],
        include=["*.md"],
        id_prefix="kb/",
    )
    assert [i.document_id for i in inputs] == [
        "kb/drafts/wip.md", "kb/intro.md", "kb/README.md", "kb/https://example.org/a/page.html?x=1"
    ]
    first = inputs[0]
    assert isinstance(first, FileInput) and first.source == str(corpus / "guide" / "drafts" / "wip.md")
    assert isinstance(inputs[-1], UrlInput)


def test_a_file_named_explicitly_is_taken_whatever_the_filters(corpus: Path) -> None:
    inputs = collect_inputs([str(corpus / "guide/img/logo.png")], include=["*.md"], exclude=["*.png"])
    assert [i.document_id for i in inputs] == ["logo.png"]


def test_two_inputs_with_one_id_are_refused_before_anything_is_sent(tmp_path: Path) -> None:
    tree(tmp_path, {"a/index.md": "a", "b/index.md": "b"})
    with pytest.raises(InputError, match=r"'index\.md'"):
        collect_inputs([str(tmp_path / "a"), str(tmp_path / "b")])
    # The same file reached twice is one input.
    assert len(collect_inputs([str(tmp_path / "a"), str(tmp_path / "a" / "index.md")])) == 1


def test_a_path_that_does_not_exist_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        collect_inputs([str(tmp_path / "missing")])


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.md", "text/markdown"), ("a.MARKDOWN", "text/markdown"), ("a.txt", "text/plain"), ("a.htm", "text/html"),
     ("a.pdf", "application/pdf"), ("a.jsonl", "application/x-ndjson"), ("a.csv", "text/csv"),
     ("a.json", "application/json"), ("noext", "application/octet-stream")],
)
def test_a_files_content_type_comes_from_its_extension(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


def test_reading_a_file_keeps_its_bytes_and_refuses_what_is_too_large(tmp_path: Path) -> None:
    path = tree(tmp_path, {"notes.md": b"# caf\xe9"}) / "notes.md"
    loaded = read_file(path, max_bytes=100)
    assert (loaded.data, loaded.content_type, loaded.title) == (b"# caf\xe9", "text/markdown", "notes")
    with pytest.raises(LoadError) as caught:
        read_file(path, max_bytes=3)
    assert caught.value.code == "too_large"
    with pytest.raises(LoadError) as empty:
        read_file(tree(tmp_path, {"e.txt": b""}) / "e.txt", max_bytes=3)
    assert empty.value.code == "empty"


# ---------------------------------------------------------------- state file and skip rules


def test_only_unchanged_bytes_already_indexed_are_skipped() -> None:
    indexed = StateEntry(sha256="abc", status="indexed")
    assert plan_for(indexed, "abc") == "skip"
    assert plan_for(indexed, "abd") == "submit"  # changed
    assert plan_for(None, "abc") == "submit"  # new
    assert plan_for(indexed, "abc", force=True) == "submit"
    assert plan_for(StateEntry(sha256="abc", status="rejected", reasons=["too_short"]), "abc") == "submit"
    # Submitted by an interrupted run: ask the gateway before resubmitting.
    assert plan_for(StateEntry(sha256="abc", status="pending"), "abc") == "ask"
    assert plan_for(StateEntry(sha256="abc", status="pending"), "xyz") == "submit"


def test_the_state_file_round_trips_and_keeps_other_gateways_apart(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ingest-state.json"
    here, there = state_scope("http://gw:8080/", "key-1"), state_scope("http://gw:8080", "key-2")
    assert here != there and "key-1" not in here
    first = IngestState.load(path, here)
    first.entries["a.md"] = StateEntry(sha256="s1", status="indexed")
    first.save()
    other = IngestState.load(path, there)
    assert other.entries == {}
    other.entries["b.md"] = StateEntry(sha256="s2", status="rejected", reasons=["duplicate"])
    other.save()
    again = IngestState.load(path, here)
    assert again.entries == {"a.md": StateEntry(sha256="s1", status="indexed")}
    raw = json.loads(path.read_text())
    assert raw["version"] == 1 and set(raw["scopes"]) == {here, there}
    assert not path.with_name(path.name + ".tmp").exists()


def test_an_unreadable_state_file_is_an_error_not_a_silent_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{half")
    with pytest.raises(InputError, match="unreadable"):
        IngestState.load(path, "scope")


def test_the_local_api_key_is_the_first_entry_of_the_key_file(tmp_path: Path) -> None:
    assert read_local_api_key(tmp_path) is None
    (tmp_path / "api-key").write_text("# local stack\ngyre-abc:default\nother\n")
    assert read_local_api_key(tmp_path) == "gyre-abc"


# ---------------------------------------------------------------- summary


def test_the_summary_counts_verdicts_rejections_by_reason_and_duplicates_apart() -> None:
    outcomes = [
        Outcome("a", "indexed"),
        Outcome("b", "indexed"),
        Outcome("c", "rejected", ("too_short", "mostly_symbols"), "too_short: 3 words"),
        Outcome("d", "rejected", ("too_short",), "too_short: 1 word"),
        Outcome("e", "rejected", ("near_duplicate",), "near_duplicate: like a"),
        Outcome("f", "rejected", ("duplicate",), "duplicate: same as b"),
        Outcome("g", "unchanged"),
        Outcome("h", "fetch_failed", ("timeout",), "https://x: too slow"),
        Outcome("i", "submit_failed", ("document_too_large",), "big.pdf: too large"),
        Outcome("j", "pending"),
    ]
    summary = summarise(outcomes)
    assert (summary.accepted, summary.rejected, summary.duplicates, summary.unchanged) == (2, 2, 2, 1)
    assert summary.rejected_by_reason == {"too_short": 2, "mostly_symbols": 1}
    assert summary.fetch_failed == {"timeout": 1} and summary.submit_failed == {"document_too_large": 1}
    assert summary.pending == 1 and summary.exit_code == 1
    text = format_summary(summary, wait_timeout_s=600)
    assert "accepted: 2\n" in text and "rejected: 2 (too_short: 2, mostly_symbols: 1)" in text
    assert "duplicates: 2" in text and "unchanged: 1" in text and "failed to fetch: 1 (timeout: 1)" in text
    assert "failed to submit: 1 (document_too_large: 1)" in text
    assert "still pending after 600 s without progress: 1" in text
    assert "rejected   c: too_short: 3 words" in text and "not read   h: https://x: too slow" in text


def test_rejections_alone_do_not_fail_the_run() -> None:
    summary = summarise([Outcome("a", "rejected", ("unsupported_type",), "no"), Outcome("b", "unchanged")])
    assert summary.exit_code == 0


CONTROL_SEQUENCE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")  # colours, cursor hidden or shown, line cleared


def test_the_progress_bar_draws_on_a_terminal_only_each_frame_within_its_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")  # narrower than the bar and its counts: wrapped frames would pile up
    shown, hidden = io.StringIO(), io.StringIO()
    bar = ProgressBar(4, shown, enabled=True)
    bar.update(submitted=2)
    bar.update(done=1)
    bar.close()
    bar.close()
    text = CONTROL_SEQUENCE.sub("", shown.getvalue())
    frames = text.split("\r")  # each redraw starts at the line's beginning
    assert "1/4 settled, 2 submitted, 0 failed" in frames[-1] and text.endswith("\n") and text.count("\n") == 1
    assert all(len(frame.rstrip("\n")) <= 40 for frame in frames), frames
    assert shown.getvalue().endswith("\x1b[?25h")  # the cursor is shown again
    quiet = ProgressBar(4, hidden)  # a StringIO is no terminal
    quiet.update(done=4)
    quiet.close()
    assert hidden.getvalue() == ""


# ---------------------------------------------------------------- fetching URLs (a real local HTTP server)


class Pages(StaticPages):
    pages: ClassVar[Mapping[str, tuple[str, bytes]]] = {
        "/page.html": ("text/html; charset=utf-8", b"<html><title>T</title><p>Hello</p></html>")
    }

    def do_GET(self) -> None:
        if self.path == "/endless":  # no Content-Length: only counting the bytes can stop it
            self.trickle(b"x" * 1024, times=1000, pause_s=0)
        elif self.path == "/slow":  # a trickle: each read is quick, the whole is not
            self.trickle(b"x", times=50, pause_s=0.1)
        else:
            super().do_GET()

    def trickle(self, piece: bytes, *, times: int, pause_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        try:
            for _ in range(times):
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(pause_s)
        except OSError:
            pass


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    with serving(Pages) as url:
        yield url


def fetch(url: str, *, max_bytes: int = 1 << 20, timeout_s: float = 5.0) -> object:
    async def go() -> object:
        async with httpx.AsyncClient() as http:
            try:
                return await fetch_url(http, url, max_bytes=max_bytes, timeout_s=timeout_s)
            except LoadError as exc:
                return exc.code

    return asyncio.run(go())


def test_a_page_is_fetched_with_the_content_type_the_server_gives(web: str) -> None:
    loaded = fetch(f"{web}/page.html")
    assert not isinstance(loaded, str)
    assert loaded.data.startswith(b"<html>") and loaded.content_type == "text/html; charset=utf-8"  # type: ignore[attr-defined]
    assert loaded.title == "page"  # type: ignore[attr-defined]


def test_a_download_is_stopped_past_max_bytes_even_without_a_declared_length(web: str) -> None:
    assert fetch(f"{web}/endless", max_bytes=10_000) == "too_large"
    assert fetch(f"{web}/page.html", max_bytes=10) == "too_large"


def test_a_download_is_stopped_after_the_fetch_timeout_even_if_bytes_trickle_in(web: str) -> None:
    started = time.monotonic()
    assert fetch(f"{web}/slow", timeout_s=0.5) == "timeout"
    assert time.monotonic() - started < 3


def test_an_http_error_is_named_by_its_status(web: str) -> None:
    assert fetch(f"{web}/missing") == "http_404"
