"""`gyre eval`: its arguments, what it sends the gateway, how it prints runs, sets and comparisons, synth's input."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gyre_cli import eval_client, eval_command, eval_format
from gyre_cli.eval_client import EvalClient
from gyre_contracts import Chunk, ChunksReady, FeedbackRecorded
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.documents import DocumentRecord, DocumentRegistry
from gyre_runtime.state.golden_sets import GoldenItem
from gyre_runtime.state.golden_synth import SourceChunk
from gyre_runtime.vectorstore.base import point_id
from tests.support.nats_server import NatsServer

Handler = Callable[[httpx.Request], httpx.Response]

METRICS = {"must_include": 0.75, "degenerate": 0.0, "total_ms_p50": 812.4, "prompt_tokens_mean": 301.25, "items": 4.0}


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gyre")
    eval_command.add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def client_of(handler: Handler) -> EvalClient:
    return EvalClient("http://gateway", "admin-key", transport=httpx.MockTransport(handler))


def run_record(**fields: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "eval-1", "status": "completed", "reason": "", "set": "golden", "set_version": 2,
        "progress": {"done": 4, "total": 4, "errors": 0}, "metrics": METRICS, "passed": None, "gate_failures": [],
        "baseline": "", "comparison": [], "settings": {}, "prompt_version": "rag-answer:3",
        "model_version": "tiny:1:abc", "items": None,
    }
    return record | fields


def invoke(argv: list[str], handler: Handler) -> tuple[int, str]:
    out = io.StringIO()
    status = eval_command.cmd_eval(parse("eval", *argv), client=client_of(handler), out=out)
    return status, out.getvalue()


# ---------------------------------------------------------------- arguments


def test_run_options_become_a_body_with_only_what_was_set() -> None:
    args = parse("eval", "run", "golden")
    assert eval_command.run_body(args) == {"set": "golden"}
    args = parse(
        "eval", "run", "golden", "--set-version", "3", "--prompt-label", "candidate", "--model", "tiny",
        "--mode", "dense", "--temperature", "0.3", "--seed", "7", "--max-tokens", "64", "--baseline", "eval-0",
        "--floor", "must_include=0.8", "--floor", "degenerate=0.05",
    )
    assert eval_command.run_body(args) == {
        "set": "golden", "set_version": 3, "prompt_label": "candidate", "model": "tiny", "baseline": "eval-0",
        "retrieval": {"mode": "dense"}, "sampling": {"max_tokens": 64, "temperature": 0.3, "seed": 7},
        "floors": {"must_include": 0.8, "degenerate": 0.05},
    }
    assert eval_command.run_body(parse("eval", "run", "golden", "--top-k", "0"))["retrieval"] == {
        "mode": "hybrid", "top_k": 0
    }


@pytest.mark.parametrize("floor", ["must_include", "must_include=", "=0.5", "must_include=high", "x=nan"])
def test_a_floor_that_is_not_metric_equals_number_is_a_usage_error(
    floor: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse("eval", "run", "golden", "--floor", floor)
    assert caught.value.code == 2 and "expected metric=value" in capsys.readouterr().err


def test_gateway_url_and_key_come_from_options_then_environment_then_the_local_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GYRE_API_KEY", raising=False)
    monkeypatch.setenv("GYRE_GATEWAY_URL", "http://elsewhere:9000")
    (tmp_path / "api-key").write_text("# local stack\nfile-key:default\n", encoding="utf-8")
    settings = load_settings({}, data_dir=str(tmp_path))
    args = parse("eval", "sets", "list")
    client = eval_client.client_from(args, settings)
    assert (client.base_url, client.api_key) == ("http://elsewhere:9000", "file-key")
    monkeypatch.setenv("GYRE_API_KEY", "env-key")
    assert eval_client.client_from(args, settings).api_key == "env-key"
    args = parse("eval", "sets", "list", "--key", "option-key", "--url", "http://here:1")
    assert (eval_client.client_from(args, settings).api_key, args.url) == ("option-key", "http://here:1")


def test_without_a_key_nothing_is_sent_and_the_error_says_where_a_key_comes_from(
    capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"sets": []})

    client = EvalClient("http://gateway", None, transport=httpx.MockTransport(handler))
    status = eval_command.cmd_eval(parse("eval", "sets", "list"), client=client, out=io.StringIO())
    assert status == 2 and sent == [] and "--key, set GYRE_API_KEY" in capsys.readouterr().err


# ---------------------------------------------------------------- talking to the gateway


def test_a_refusal_exits_2_with_the_gateways_message(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        message = "unknown golden set 'nope' (sets of tenant 'default': golden)"
        return httpx.Response(404, json={"error": {"message": message, "code": "golden_set_not_found"}})

    status, out = invoke(["run", "nope"], handler)
    assert status == 2 and out == ""
    assert "error: unknown golden set 'nope' (sets of tenant 'default': golden)" in capsys.readouterr().err


def test_an_unreachable_gateway_exits_2_naming_its_url(capsys: pytest.CaptureFixture[str]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    status, _ = invoke(["sets", "list"], handler)
    assert status == 2 and "cannot reach the gateway at http://gateway" in capsys.readouterr().err


def test_run_without_wait_posts_the_body_with_the_key_and_prints_the_id() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"id": "eval-7", "status": "queued", "set": "golden", "set_version": 2})

    status, out = invoke(["run", "golden", "--prompt-label", "candidate"], handler)
    assert (status, out) == (0, "eval-7\n")
    assert [(r.method, r.url.path) for r in seen] == [("POST", "/v1/evaluations")]
    assert json.loads(seen[0].content) == {"set": "golden", "prompt_label": "candidate"}
    assert seen[0].headers["authorization"] == "Bearer admin-key"


def following(*states: dict[str, Any]) -> Handler:
    """A gateway that accepts the run, then answers each GET with the next state (the last one repeated)."""
    left = list(states)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, json={"id": "eval-1", "status": "queued", "set": "golden", "set_version": 2})
        assert request.url.params["items"] == "false"
        return httpx.Response(200, json=left.pop(0) if len(left) > 1 else left[0])

    return handler


def test_wait_follows_progress_then_prints_the_metrics_and_exits_0_on_a_pass(
    capsys: pytest.CaptureFixture[str]
) -> None:
    handler = following(
        run_record(status="queued", progress={"done": 0, "total": 0, "errors": 0}, metrics={}),
        run_record(status="running", progress={"done": 1, "total": 4, "errors": 0}, metrics={}),
        run_record(status="running", progress={"done": 3, "total": 4, "errors": 1}, metrics={}),
        run_record(passed=True),
    )
    status, out = invoke(["run", "golden", "--wait", "--poll-s", "0"], handler)
    assert status == 0
    progress = capsys.readouterr().err.splitlines()
    assert progress == [
        "eval-1: queued, 0/0 items scored", "eval-1: running, 1/4 items scored",
        "eval-1: running, 3/4 items scored, 1 errors", "eval-1: completed, 4/4 items scored",
    ]
    lines = out.splitlines()
    assert lines[0] == "eval-1" and "set golden v2, prompt rag-answer:3, model tiny:1:abc" in out
    table = [line.split() for line in lines[lines.index("") + 3:lines.index("gate: passed")] if line]
    assert table == [["must_include", "0.750"], ["degenerate", "0.000"], ["total_ms_p50", "812"],
                     ["prompt_tokens_mean", "301.2"], ["items", "4"]]


def test_wait_exits_1_when_the_gate_fails_and_lists_why() -> None:
    failure = "must_include 0.75 is below the floor 0.80"
    status, out = invoke(["run", "golden", "--wait", "--poll-s", "0"],
                         following(run_record(passed=False, gate_failures=[failure])))
    assert status == 1 and "gate: FAILED" in out and f"  - {failure}" in out


def test_wait_exits_1_when_the_run_fails_and_says_why() -> None:
    failed = run_record(status="failed", reason="no generate replica answers", metrics={})
    status, out = invoke(["run", "golden", "--wait", "--poll-s", "0"], following(failed))
    assert status == 1 and "failed: no generate replica answers" in out


def test_show_with_items_prints_each_verdict_question_and_answer_excerpt_and_saves_report_and_chart(
    tmp_path: Path
) -> None:
    items = [
        {"item_id": "q1", "score": {"question": "What does gyre up start?", "answer": "It starts nats-server. " * 9,
                                    "must_include": True}},
        {"item_id": "q2", "score": {"question": "Who wrote the memo?", "answer": "Alice.",
                                    "must_include": None, "unanswerable_refused": False}},
        {"item_id": "q3", "error": "generate failed: model_failed", "score": {"question": "Why?", "answer": ""}},
    ]
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/report"):
            return httpx.Response(200, text="# Evaluation eval-1\n")
        if request.url.path.endswith("/chart.png"):
            return httpx.Response(200, content=b"\x89PNG-bytes")
        assert request.url.params["items"] == "true"
        return httpx.Response(200, json=run_record(items=items))

    report, chart = tmp_path / "r.md", tmp_path / "c.png"
    status, out = invoke(["show", "eval-1", "--items", "--report", str(report), "--chart", str(chart)], handler)
    assert status == 0
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("q")}
    assert rows["q1"].split()[1] == "PASS" and "What does gyre up start?" in rows["q1"]
    assert rows["q1"].endswith("...") and len(rows["q1"].split("start?", 1)[1].strip()) <= eval_format.EXCERPT_CHARS
    assert rows["q2"].split()[1] == "FAIL" and rows["q2"].endswith("Alice.")
    assert rows["q3"].split()[1] == "ERROR" and "model_failed" in rows["q3"]
    assert report.read_text() == "# Evaluation eval-1\n" and chart.read_bytes() == b"\x89PNG-bytes"
    assert f"report saved to {report}" in out and paths[1:] == ["/v1/evaluations/eval-1/report",
                                                                "/v1/evaluations/eval-1/chart.png"]


def runs(*records: dict[str, Any]) -> Handler:
    by_id = {r["id"]: r for r in records}
    return lambda request: httpx.Response(200, json=by_id[request.url.path.rsplit("/", 1)[1]])


def test_compare_prints_the_services_paired_comparison_when_the_candidate_ran_against_that_baseline() -> None:
    row = {"metric": "must_include", "baseline": 0.5, "candidate": 0.75, "diff": 0.25, "ci_low": 0.05,
           "ci_high": 0.45, "p_value": 0.031, "n": 40, "test": "mcnemar"}
    baseline = run_record(id="eval-a", metrics={"must_include": 0.5})
    candidate = run_record(id="eval-b", baseline="eval-a", comparison=[row])
    status, out = invoke(["compare", "eval-a", "eval-b"], runs(baseline, candidate))
    assert status == 0 and "paired by item" in out
    assert out.splitlines()[-1].split() == ["must_include", "0.500", "0.750", "+0.250", "[+0.050,", "+0.450]",
                                            "0.031", "40"]


def test_compare_of_unrelated_completed_runs_prints_plain_differences_and_says_how_to_get_intervals() -> None:
    baseline = run_record(id="eval-a", metrics={"must_include": 0.5, "total_ms_p50": 900.0})
    candidate = run_record(id="eval-b", metrics={"must_include": 0.75, "total_ms_p50": 850.0, "items": 4.0})
    status, out = invoke(["compare", "eval-a", "eval-b"], runs(baseline, candidate))
    assert status == 0 and "--baseline eval-a" in out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[3:]}
    assert rows == {"must_include": ["0.500", "0.750", "+0.250"], "total_ms_p50": ["900", "850", "-50"],
                    "items": ["-", "4", "-"]}


def test_compare_refuses_a_run_that_has_not_completed(capsys: pytest.CaptureFixture[str]) -> None:
    status, out = invoke(["compare", "eval-a", "eval-b"],
                         runs(run_record(id="eval-a"), run_record(id="eval-b", status="running")))
    assert (status, out) == (1, "") and "eval-b is running" in capsys.readouterr().err


# ---------------------------------------------------------------- golden sets


def test_sets_put_sends_the_file_as_jsonl_and_says_which_version_it_became(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b'{"id": "q1", "question": "What?"}\n')
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"name": "golden", "version": 3, "items": 1, "checksum": "ab" * 32,
                                         "created": True})

    status, out = invoke(["sets", "put", "golden", str(path)], handler)
    assert (status, out) == (0, f"stored golden version 3 (1 items, checksum {'ab' * 6})\n")
    assert (seen[0].method, seen[0].url.path) == ("PUT", "/v1/evaluations/sets/golden")
    assert seen[0].headers["content-type"] == "application/x-ndjson" and seen[0].content == path.read_bytes()


def test_sets_list_and_show_summarise_counts_and_the_first_items() -> None:
    sets = [{"name": "golden", "versions": [1, 2], "latest": 2, "items": 7, "checksum": "0123456789abcdef"}]
    items: list[dict[str, Any]] = [
        {"id": f"q{n}", "question": f"Question {n}?", "must_include": ["term"]} for n in range(6)
    ]
    items.append({"id": "u1", "question": "Unknowable?", "answerable": False})
    golden = {"name": "golden", "version": 1, "checksum": "0123", "items": [items[-1], *items[:-1]],
              "counts": {"items": 7, "answerable": 6, "unanswerable": 1, "with_labels": 0, "checked": 2,
                         "by_origin": {"hand": 5, "synthetic": 2}}}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/evaluations/sets":
            return httpx.Response(200, json={"sets": sets})
        assert request.url.params["version"] == "1"
        return httpx.Response(200, json=golden)

    status, out = invoke(["sets", "list"], handler)
    assert status == 0 and out.splitlines()[-1].split() == ["golden", "2", "1,2", "7", "0123456789ab"]
    status, out = invoke(["sets", "show", "golden", "--version", "1"], handler)
    lines = out.splitlines()
    assert lines[0] == ("golden v1: 7 items (6 answerable, 1 unanswerable, 2 checked, 0 with relevant ids); "
                        "origins: hand 5, synthetic 2")
    assert "first 5 of 7:" in lines and "  u1: Unknowable? (unanswerable)" in lines
    assert "  q0: Question 0? (must include: term)" in lines and not any("q4" in line for line in lines)


def test_sets_export_writes_the_jsonl_to_a_file_or_standard_output(tmp_path: Path) -> None:
    data = b'{"id":"q1","question":"What?"}\n'

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/evaluations/sets/golden/export"
        return httpx.Response(200, content=data, headers={"content-type": "application/x-ndjson"})

    target = tmp_path / "out.jsonl"
    assert invoke(["sets", "export", "golden", "-o", str(target)], handler) == (0, "")
    assert target.read_bytes() == data
    assert invoke(["sets", "export", "golden"], handler) == (0, data.decode())


def test_values_are_written_in_their_units() -> None:
    assert [eval_format.format_value(name, value) for name, value in METRICS.items()] == [
        "0.750", "0.000", "812", "301.2", "4"
    ]
    assert eval_format.format_signed("must_include", -0.1) == "-0.100"
    assert eval_format.format_value("ttft_ms_p50", None) == "-"


# ---------------------------------------------------------------- synth


@pytest.fixture
def nats_settings(tmp_path: Path) -> Iterator[Settings]:
    with NatsServer() as server:
        yield load_settings({}, nats_url=server.url, data_dir=str(tmp_path))


def ready(tenant: str, document_id: str, version: int, *texts: str) -> ChunksReady:
    chunks = tuple(Chunk(index=i, text=t, start=0, end=len(t), token_count=len(t.split()), heading_path=("Intro",))
                   for i, t in enumerate(texts))
    return ChunksReady(tenant=tenant, document_id=document_id, version=version, title=document_id.upper(),
                       chunks=chunks, submitted_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))


def replaced_by(record: DocumentRecord) -> Callable[[DocumentRecord | None], DocumentRecord]:
    return lambda _: record


async def index_documents(settings: Settings) -> None:
    """What ingest and embed leave behind: ChunksReady in GYRE_EMBED and registry records."""
    bus = await connect(settings, name="gyre-test")
    try:
        await ensure_topology(bus)
        publisher = Publisher(bus, "ingest")
        events = [ready("t", "guide", 1, "old text"), ready("t", "guide", 2, "Gyre runs on NATS.", "It scales."),
                  ready("t", "gone", 1, "deleted text"), ready("other", "theirs", 1, "not yours")]
        for event in events:
            await publisher.publish(event, event_id=f"{event.tenant}-{event.document_id}-{event.version}")
        registry = DocumentRegistry(await bus.kv("gyre_documents"))
        records = [DocumentRecord(document_id="guide", tenant="t", status="indexed", version=2),
                   DocumentRecord(document_id="gone", tenant="t", status="deleted", version=1),
                   DocumentRecord(document_id="theirs", tenant="other", status="indexed", version=1)]
        for record in records:
            await registry.update(record.tenant, record.document_id, replaced_by(record))
    finally:
        await bus.close()


def test_synth_reads_the_latest_chunks_of_the_tenants_live_documents_and_writes_jsonl(
    nats_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(index_documents(nats_settings))
    given: list[Any] = []

    def synthesizer(chunks: list[SourceChunk], n: int, *, seed: int, unanswerable_share: float) -> list[GoldenItem]:
        given.append((chunks, n, seed, unanswerable_share))
        return [GoldenItem(id=f"synth-{i}", question=f"What about {c.text}?", origin="synthetic",
                           relevant=(c.chunk_id,)) for i, c in enumerate(chunks)]

    out = io.StringIO()
    args = parse("eval", "synth", "--tenant", "t", "--n", "5", "--seed", "3")
    status = eval_command.cmd_synth(args, client_of(lambda r: httpx.Response(500)), out, synthesizer=synthesizer,
                                    settings=nats_settings)
    assert status == 0
    chunks, n, seed, share = given[0]
    assert (n, seed, share) == (5, 3, 0.2)
    assert [(c.document_id, c.text, c.title, c.heading_path) for c in chunks] == [
        ("guide", "Gyre runs on NATS.", "GUIDE", ("Intro",)), ("guide", "It scales.", "GUIDE", ("Intro",))
    ]
    assert chunks[0].chunk_id == point_id("t", "guide", 2, 0)  # the id search returns for that chunk
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["id"] for line in lines] == ["synth-0", "synth-1"]
    assert "2 items from 2 chunks of 1 documents of tenant 't'" in capsys.readouterr().err


def test_synth_with_put_stores_the_items_as_a_set_through_the_gateway(nats_settings: Settings) -> None:
    asyncio.run(index_documents(nats_settings))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"name": "synthetic", "version": 1, "items": 1, "checksum": "c" * 64,
                                         "created": True})

    def synthesizer(chunks: list[SourceChunk], n: int, **_: Any) -> list[GoldenItem]:
        return [GoldenItem(id="s1", question="What does Gyre run on?", origin="synthetic")]

    out = io.StringIO()
    args = parse("eval", "synth", "--tenant", "t", "--n", "1", "--put", "synthetic")
    assert eval_command.cmd_synth(args, client_of(handler), out, synthesizer=synthesizer,
                                  settings=nats_settings) == 0
    assert seen[0].url.path == "/v1/evaluations/sets/synthetic"
    assert json.loads(seen[0].content)["question"] == "What does Gyre run on?"
    assert out.getvalue().startswith("stored synthetic version 1")


def test_synth_for_a_tenant_without_documents_says_so(
    nats_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(index_documents(nats_settings))
    args = parse("eval", "synth", "--tenant", "nobody", "--n", "3")
    status = eval_command.cmd_synth(args, client_of(lambda r: httpx.Response(500)), io.StringIO(),
                                    synthesizer=lambda *a, **k: [], settings=nats_settings)
    assert status == 1 and "tenant 'nobody' has no indexed documents" in capsys.readouterr().err


# ---------------------------------------------------------------- from feedback


async def record_feedback(settings: Settings) -> None:
    """What the feedback service leaves behind: FeedbackRecorded in GYRE_FEEDBACK."""
    bus = await connect(settings, name="gyre-test")
    try:
        await ensure_topology(bus)
        publisher = Publisher(bus, "feedback")
        common = {"model_version": "m:1", "prompt_version": "rag-answer:1", "question": "Where is data kept?"}
        events = [
            FeedbackRecorded(tenant="t", feedback_id="f1", request_id="r1", rating=1, answer="In Qdrant [1].",
                             cited_documents=("intro",), **common),
            FeedbackRecorded(tenant="t", feedback_id="f2", request_id="r2", rating=-1, answer="In a shoebox.",
                             correction="Documents are kept in Qdrant.", **common),
            FeedbackRecorded(tenant="t", feedback_id="f3", request_id="r3", rating=-1, answer="Nowhere.", **common),
            FeedbackRecorded(tenant="other", feedback_id="f4", request_id="r4", rating=1, answer="Theirs.", **common),
        ]
        for event in events:
            await publisher.publish(event, event_id=event.feedback_id)
    finally:
        await bus.close()


def test_from_feedback_turns_a_tenants_ratings_into_golden_items(nats_settings: Settings) -> None:
    asyncio.run(record_feedback(nats_settings))
    out = io.StringIO()
    args = parse("eval", "sets", "from-feedback", "--tenant", "t")
    status = eval_command.cmd_from_feedback(args, client_of(lambda r: httpx.Response(500)), out,
                                            settings=nats_settings)
    assert status == 0
    items = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    # The thumbs-up's answer and the thumbs-down's correction; a thumbs-down without one says nothing right.
    assert [item["answer"] for item in items] == ["In Qdrant [1].", "Documents are kept in Qdrant."]
    assert items[0]["relevant"] == ["intro"] and items[1]["tags"] == ["negative"]
    assert all(item["origin"] == "feedback" for item in items)
