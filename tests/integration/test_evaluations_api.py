"""The evaluation endpoints against a real nats-server: golden sets, starting a run, reading it, admin scope."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from gyre_contracts import EvaluationRequested, decode_event
from gyre_gateway.app import create_app
from gyre_gateway.errors import ApiError
from gyre_gateway.evaluations.protocol import EVALUATION_METRICS
from gyre_gateway.evaluations.serving import items_from_body
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.api_keys import ApiKeyStore
from gyre_runtime.state.evaluations import EvaluationRun, EvaluationStore
from gyre_runtime.state.golden_sets import GoldenItem, dump_golden_jsonl
from gyre_runtime.state.models import ModelEntry, ModelRegistry
from gyre_runtime.state.prompts import PromptRegistry
from tests.support.nats_server import NatsServer
from tests.support.services import until_ready

KEY_A, KEY_B = "eval-key-tenant-a", "eval-key-tenant-b"
MODEL = ModelEntry(id="tiny-generator", kind="generation", version="tiny-generator:1:0123abcd", served_by="generate")

ITEMS = [
    {"id": "q1", "question": "What does gyre up start?", "answer": "nats-server and every process",
     "must_include": ["nats-server"], "checked": True},
    {"id": "q2", "question": "Who wrote the moon landing memo?", "answerable": False},
]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class Gateway:
    http: httpx.AsyncClient
    bus: Bus  # the test's own connection, to look at the stream and stores behind the gateway


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    """The integration suite's nats-server (its conftest), with two tenants' keys."""
    return load_settings(
        {}, nats_url=nats_server.url, data_dir=str(tmp_path), api_keys=f"{KEY_A}:tenant-a,{KEY_B}:tenant-b"
    )


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """The gateway app in this event loop, connected (its lifespan run by hand), and a bus of the test."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await until_ready(app.state.service)
        bus = await connect(settings, name="gyre-test")
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=auth(KEY_A)) as http:
                yield Gateway(http=http, bus=bus)
        finally:
            await bus.close()


async def put_json_set(gateway: Gateway, name: str, items: list[dict[str, Any]], key: str = KEY_A) -> httpx.Response:
    return await gateway.http.put(f"/v1/evaluations/sets/{name}", json={"items": items}, headers=auth(key))


def error_of(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


async def seed_registries(gateway: Gateway) -> None:
    """What the generate service writes at its start: the default prompt (production, candidate) and its model."""
    await PromptRegistry(await gateway.bus.kv("gyre_prompts")).seed()
    await ModelRegistry(await gateway.bus.kv("gyre_models")).register(MODEL)


async def store_run(gateway: Gateway, run: EvaluationRun) -> EvaluationStore:
    bus = gateway.bus
    store = EvaluationStore(await bus.kv("gyre_evaluations"), await bus.object_store("gyre_evaluations"))
    await store.save(run)
    return store


# ---------------------------------------------------------------- golden sets


async def test_a_set_becomes_version_1_and_the_same_items_again_make_no_new_version(gateway: Gateway) -> None:
    first = await put_json_set(gateway, "smoke", ITEMS)
    assert first.status_code == 201
    assert first.json() | {"checksum": ""} == {"name": "smoke", "version": 1, "items": 2, "checksum": "",
                                              "created": True}
    # Reordered lines ask the same questions: the same set.
    again = await put_json_set(gateway, "smoke", list(reversed(ITEMS)))
    assert again.status_code == 200
    assert again.json() == first.json() | {"created": False}
    changed = await put_json_set(gateway, "smoke", ITEMS[:1])
    assert changed.status_code == 201 and changed.json()["version"] == 2


async def test_a_malformed_json_set_is_400_naming_the_item_and_the_reason(gateway: Gateway) -> None:
    response = await put_json_set(gateway, "bad", [ITEMS[0], {"id": "q2", "question": "  "}])
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_golden_set"
    assert "item 2" in error["message"] and "the question is empty" in error["message"]
    listed = await gateway.http.get("/v1/evaluations/sets")
    assert listed.json() == {"sets": []}


def test_a_malformed_jsonl_set_is_refused_naming_the_line_and_the_reason() -> None:
    data = dump_golden_jsonl([GoldenItem(id="q1", question="ok?")]) + b"\n" + b'{"id": "q1", "question": "again?"}\n'
    with pytest.raises(ApiError) as caught:
        items_from_body("mine", data, "application/x-ndjson")
    assert caught.value.status_code == 400
    assert "at line 3" in caught.value.message and "duplicate id 'q1'" in caught.value.message
    with pytest.raises(ApiError) as caught:
        items_from_body("mine", b"{not json\n", "text/plain; charset=utf-8")
    assert "at line 1: invalid JSON" in caught.value.message


def test_a_set_body_in_another_format_is_415_saying_what_to_send() -> None:
    with pytest.raises(ApiError) as caught:
        items_from_body("mine", b"q1,question", "text/csv")
    assert caught.value.status_code == 415 and "application/x-ndjson" in caught.value.message


async def test_a_set_is_accepted_as_its_jsonl_file(gateway: Gateway) -> None:
    body = b"".join(msgspec.json.encode(item) + b"\n" for item in ITEMS)
    response = await gateway.http.put(
        "/v1/evaluations/sets/from-file", content=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 201 and response.json()["items"] == 2
    malformed = await gateway.http.put(
        "/v1/evaluations/sets/from-file", content=body + b"[1, 2]\n", headers={"Content-Type": "text/plain"}
    )
    assert malformed.status_code == 400 and "at line 3: expected a JSON object" in error_of(malformed)["message"]


async def test_sets_are_listed_shown_by_version_and_exported_as_jsonl(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    await put_json_set(gateway, "alpha", ITEMS[:1])
    await put_json_set(gateway, "beta", ITEMS[1:])
    listed = (await gateway.http.get("/v1/evaluations/sets")).json()["sets"]
    assert [(s["name"], s["versions"], s["latest"], s["items"]) for s in listed] == [
        ("alpha", [1, 2], 2, 1), ("beta", [1], 1, 1)
    ]
    shown = (await gateway.http.get("/v1/evaluations/sets/alpha", params={"version": 1})).json()
    assert shown["version"] == 1 and [item["id"] for item in shown["items"]] == ["q1", "q2"]
    assert shown["counts"] | {"by_origin": {}} == {
        "items": 2, "answerable": 1, "unanswerable": 1, "with_labels": 0, "checked": 1, "by_origin": {}
    }
    latest = (await gateway.http.get("/v1/evaluations/sets/alpha")).json()
    assert latest["version"] == 2 and len(latest["items"]) == 1
    exported = await gateway.http.get("/v1/evaluations/sets/alpha/export", params={"version": 1})
    assert exported.headers["content-type"] == "application/x-ndjson"
    assert [msgspec.json.decode(line)["id"] for line in exported.content.splitlines()] == ["q1", "q2"]
    assert 'filename="alpha-v1.jsonl"' in exported.headers["content-disposition"]


async def test_an_unknown_set_or_version_is_404_naming_what_exists(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    unknown = await gateway.http.get("/v1/evaluations/sets/gamma")
    assert unknown.status_code == 404 and "sets of tenant 'tenant-a': alpha" in error_of(unknown)["message"]
    no_version = await gateway.http.get("/v1/evaluations/sets/alpha/export", params={"version": 7})
    assert no_version.status_code == 404 and "no version 7 (versions: 1)" in error_of(no_version)["message"]


async def test_a_tenant_sees_only_its_own_sets(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    other = await gateway.http.get("/v1/evaluations/sets/alpha", headers=auth(KEY_B))
    assert other.status_code == 404
    assert (await gateway.http.get("/v1/evaluations/sets", headers=auth(KEY_B))).json() == {"sets": []}


# ---------------------------------------------------------------- starting a run


async def test_an_unknown_set_or_version_to_evaluate_is_404_naming_what_exists(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    unknown = await gateway.http.post("/v1/evaluations", json={"set": "gamma"})
    assert unknown.status_code == 404
    assert error_of(unknown)["param"] == "set" and "alpha" in error_of(unknown)["message"]
    no_version = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "set_version": 3})
    assert no_version.status_code == 404
    assert error_of(no_version)["param"] == "set_version" and "(versions: 1)" in error_of(no_version)["message"]


async def test_an_unknown_prompt_label_is_404_naming_the_labels_that_exist(gateway: Gateway) -> None:
    await seed_registries(gateway)
    await put_json_set(gateway, "alpha", ITEMS)
    response = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "prompt_label": "shiny"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["code"] == "prompt_label_not_found" and "labels: candidate, production" in error["message"]


async def test_an_unknown_model_is_404_naming_the_registered_ones(gateway: Gateway) -> None:
    await seed_registries(gateway)
    await put_json_set(gateway, "alpha", ITEMS)
    response = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "model": "gpt-9"})
    assert response.status_code == 404
    assert f"{MODEL.id} ({MODEL.version})" in error_of(response)["message"]
    for name in ("", MODEL.id, MODEL.version):
        accepted = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "model": name})
        assert accepted.status_code == 202, accepted.text


async def test_an_unknown_baseline_or_another_tenants_is_404(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    await store_run(gateway, EvaluationRun(id="eval-theirs", tenant="tenant-b", set_name="alpha", status="completed"))
    for baseline in ("eval-nothing", "eval-theirs"):
        response = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "baseline": baseline})
        assert response.status_code == 404 and error_of(response)["param"] == "baseline"


async def test_a_baseline_of_another_set_or_not_completed_is_refused_before_the_run(gateway: Gateway) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    await store_run(gateway, EvaluationRun(id="eval-beta", tenant="tenant-a", set_name="beta", status="completed"))
    await store_run(gateway, EvaluationRun(id="eval-busy", tenant="tenant-a", set_name="alpha", status="running"))
    other_set = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "baseline": "eval-beta"})
    assert other_set.status_code == 400 and "ran golden set 'beta'" in error_of(other_set)["message"]
    running = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "baseline": "eval-busy"})
    assert running.status_code == 409 and "is running" in error_of(running)["message"]


async def test_a_gate_on_an_unknown_metric_is_400_naming_it(gateway: Gateway) -> None:
    response = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "floors": {"vibes": 0.9}})
    assert response.status_code == 400 and "unknown metric(s) vibes" in error_of(response)["message"]


def test_the_gate_metrics_the_gateway_accepts_are_those_the_evaluate_service_computes() -> None:
    from gyre_contracts.evaluate import METRICS

    assert EVALUATION_METRICS == tuple(METRICS) and "must_include" in EVALUATION_METRICS


async def test_a_run_is_queued_published_and_readable_by_its_tenant_only(gateway: Gateway) -> None:
    await seed_registries(gateway)
    await put_json_set(gateway, "alpha", ITEMS)
    response = await gateway.http.post(
        "/v1/evaluations",
        json={"set": "alpha", "prompt_label": "candidate", "retrieval": {"mode": "sparse", "top_k": 6},
              "sampling": {"temperature": 0.2, "seed": 7}, "floors": {"must_include": 0.8}},
    )
    assert response.status_code == 202, response.text
    receipt = response.json()
    assert receipt["status"] == "queued" and receipt["id"].startswith("eval-") and receipt["set_version"] == 1

    raw = await gateway.bus.js.get_last_msg(
        gateway.bus.stream_name("GYRE_EVALUATE"), gateway.bus.subject(EvaluationRequested.subject)
    )
    event = decode_event(raw.data or b"", EvaluationRequested, dict(raw.headers or {}))
    assert (event.tenant, event.evaluation_id, event.set_name, event.set_version) == (
        "tenant-a", receipt["id"], "alpha", 1
    )
    assert event.prompt_label == "candidate" and event.floors == {"must_include": 0.8}
    assert event.retrieval is not None and (event.retrieval.mode, event.retrieval.top_k) == ("sparse", 6)
    # Sampling left out is the deployment's: max_tokens is GYRE_MAX_NEW_TOKENS, as for a user's request.
    assert event.sampling is not None and event.sampling.max_tokens == load_settings({}).max_new_tokens
    assert (event.sampling.temperature, event.sampling.seed) == (0.2, 7)
    assert (raw.headers or {}).get("Nats-Msg-Id") == receipt["id"]  # a retried request is de-duplicated

    run = (await gateway.http.get(f"/v1/evaluations/{receipt['id']}")).json()
    assert (run["status"], run["set"], run["progress"], run["items"]) == (
        "queued", "alpha", {"done": 0, "total": 0, "errors": 0}, []
    )
    assert run["settings"]["retrieval"] == {"mode": "sparse", "top_k": 6} and run["report_url"] is None

    assert (await gateway.http.get(f"/v1/evaluations/{receipt['id']}", headers=auth(KEY_B))).status_code == 404
    not_yet = await gateway.http.get(f"/v1/evaluations/{receipt['id']}/report")
    assert not_yet.status_code == 404 and "is queued" in error_of(not_yet)["message"]
    assert (await gateway.http.get(f"/v1/evaluations/{receipt['id']}/chart.png")).status_code == 404


async def test_retrieval_without_top_k_uses_the_deployments_as_a_users_request_does(
    gateway: Gateway, settings: Settings
) -> None:
    await put_json_set(gateway, "alpha", ITEMS)
    response = await gateway.http.post("/v1/evaluations", json={"set": "alpha", "retrieval": {"mode": "dense"}})
    assert response.status_code == 202, response.text
    raw = await gateway.bus.js.get_last_msg(
        gateway.bus.stream_name("GYRE_EVALUATE"), gateway.bus.subject(EvaluationRequested.subject)
    )
    event = decode_event(raw.data or b"", EvaluationRequested)
    assert event.retrieval is not None and (event.retrieval.mode, event.retrieval.top_k) == (
        "dense", settings.retrieval_top_k
    )
    assert event.sampling is None  # the evaluate service applies its own defaults


# ---------------------------------------------------------------- reading a finished run


async def test_a_completed_run_shows_metrics_items_report_and_chart(gateway: Gateway) -> None:
    run = EvaluationRun(
        id="eval-done", tenant="tenant-a", set_name="alpha", set_version=2, status="completed", done=2, total=2,
        metrics={"must_include": 0.5, "items": 2.0}, baseline="eval-before", passed=False,
        gate_failures=["must_include fell 0.25 below the baseline 0.75 (tolerance 0.05)"],
        comparison=[{"metric": "must_include", "baseline": 0.75, "candidate": 0.5, "diff": -0.25}],
        prompt_version="rag-answer:3", model_version=MODEL.version, results_object="eval-done/results.jsonl",
        report_object="eval-done/report.md", chart_object="eval-done/comparison.png",
    )
    store = await store_run(gateway, run)
    rows = [{"item_id": "q1", "index": 0, "score": {"must_include": True}},
            {"item_id": "q2", "index": 1, "score": {"must_include": False}}]
    await store.put_object(run.results_object, b"\n".join(msgspec.json.encode(r) for r in rows) + b"\n")
    await store.put_object(run.report_object, b"# Evaluation eval-done\n")
    await store.put_object(run.chart_object, b"\x89PNG\r\n\x1a\nfake")

    shown = (await gateway.http.get("/v1/evaluations/eval-done")).json()
    assert shown["metrics"] == run.metrics and shown["passed"] is False and shown["items"] == rows
    assert shown["gate_failures"] == run.gate_failures and shown["comparison"] == run.comparison
    assert shown["report_url"] == "/v1/evaluations/eval-done/report"
    assert shown["chart_url"] == "/v1/evaluations/eval-done/chart.png"
    assert (await gateway.http.get("/v1/evaluations/eval-done", params={"items": "false"})).json()["items"] is None

    report = await gateway.http.get("/v1/evaluations/eval-done/report")
    assert report.headers["content-type"].startswith("text/markdown") and report.text == "# Evaluation eval-done\n"
    chart = await gateway.http.get("/v1/evaluations/eval-done/chart.png")
    assert chart.headers["content-type"] == "image/png" and chart.content.startswith(b"\x89PNG")


async def test_an_id_that_names_no_run_is_404(gateway: Gateway) -> None:
    for evaluation_id in ("eval-missing", "eval.*"):
        response = await gateway.http.get(f"/v1/evaluations/{evaluation_id}")
        assert response.status_code == 404 and error_of(response)["code"] == "evaluation_not_found"


# ---------------------------------------------------------------- scope


async def test_a_key_without_the_admin_scope_is_403(gateway: Gateway) -> None:
    key, _ = await ApiKeyStore(await gateway.bus.kv("gyre_api_keys")).create("tenant-a", ("query",))
    for method, path in (("GET", "/v1/evaluations/sets"), ("POST", "/v1/evaluations"),
                         ("GET", "/v1/evaluations/eval-x")):
        response = await gateway.http.request(method, path, json={"set": "alpha"}, headers=auth(key))
        assert response.status_code == 403 and "`admin`" in error_of(response)["message"]
