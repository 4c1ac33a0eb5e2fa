"""The evaluate service on a real nats-server: golden sets through the live generate service, resumed runs, failures.

Generate runs its real wiring (consumer, prompt registry, grounding check) with a scripted model and a
scripted retrieval responder, as in test_prompt_registry: these tests are about the evaluation's bus
behaviour and bookkeeping, not about what a language model says (the e2e tests run the real models).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import msgspec
import pytest
from nats.aio.msg import Msg

from gyre_contracts import (
    EvaluationCompleted,
    EvaluationProgress,
    EvaluationRequested,
    GenerationCompleted,
    RetrievedChunk,
    RetrieveRequest,
    RetrieveResult,
    decode_event,
    new_id,
)
from gyre_evaluate.app import create_app as create_evaluate
from gyre_generate.app import create_app as create_generate
from gyre_runtime.bus import topology
from gyre_runtime.bus.connection import Bus
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings
from gyre_runtime.service import Service
from gyre_runtime.state.evaluations import EvaluationStore, GoldenSetStore
from gyre_runtime.state.golden_sets import GoldenItem
from tests.support.scripted_model import ScriptedModel

TENANT = "tenant-e"
SOURCE = RetrievedChunk(
    document_id="zorbulon", chunk_id="z1", version=1, index=0, score=0.7,
    text="The Zorbulon protocol was invented by Mira Castellane in 1987.", title="Zorbulon",
)
ITEMS = [
    GoldenItem(id="who", question="Who invented the Zorbulon protocol?", answer="Mira Castellane invented it.",
               must_include=("Castellane",), relevant=("zorbulon",)),
    GoldenItem(id="when", question="When was the Zorbulon protocol invented?", must_include=("1987",),
               relevant=("zorbulon",)),
    GoldenItem(id="where", question="Where was the Zorbulon protocol invented?", must_include=("Geneva",),
               relevant=("zorbulon",)),
    GoldenItem(id="capital", question="What is the capital of France?", answerable=False),
]


@pytest.fixture
def short_ack_wait() -> AsyncIterator[None]:
    """A killed evaluate replica's run comes back within 2 s instead of a minute."""
    saved = topology.CONSUMERS
    topology.CONSUMERS = tuple(
        dataclasses.replace(spec, ack_wait_s=2.0) if spec.durable == "evaluate" else spec for spec in saved
    )
    yield None
    topology.CONSUMERS = saved


@pytest.fixture
async def retrieval(bus: Bus) -> AsyncIterator[dict[str, bool]]:
    """A scripted embed service; ``state["relevant"] = False`` makes every question unrelated."""
    state = {"relevant": True}

    async def retrieve(msg: Msg) -> None:
        request = decode_event(msg.data, RetrieveRequest)
        related = state["relevant"] and "zorbulon" in request.query.lower()
        score = (0.7 if related else 0.05) if request.mode == "dense" else 0.033
        hits = (msgspec.structs.replace(SOURCE, score=score),)
        await Publisher(bus, "embed").reply(msg, RetrieveResult(tenant=request.tenant, hits=hits))

    responder = await bus.nc.subscribe(bus.subject("retrieve"), queue="embed", cb=retrieve)
    yield state
    await responder.unsubscribe()


@pytest.fixture
async def generate(settings: Settings, retrieval: dict[str, bool]) -> AsyncIterator[tuple[Service, ScriptedModel]]:
    model = ScriptedModel("The Zorbulon protocol was invented by Mira Castellane [1].")
    service: Service = create_generate(settings, open_model=lambda _: model).state.service
    await service.start()
    yield service, model
    await service.stop()


async def start_evaluate(settings: Settings) -> Service:
    service: Service = create_evaluate(settings).state.service
    await service.start()
    return service


async def put_set(bus: Bus, items: list[GoldenItem], name: str = "zorbulon") -> int:
    version, _ = await GoldenSetStore(await bus.object_store("gyre_golden_sets")).put(TENANT, name, items)
    return version


async def request(bus: Bus, **fields: object) -> tuple[str, asyncio.Future[EvaluationCompleted]]:
    """Publish an EvaluationRequested; a future resolved by its EvaluationCompleted."""
    evaluation_id = f"eval-{new_id()}"
    done: asyncio.Future[EvaluationCompleted] = asyncio.get_running_loop().create_future()

    async def on_completed(msg: Msg) -> None:
        event = decode_event(msg.data, EvaluationCompleted)
        if event.evaluation_id == evaluation_id and not done.done():
            done.set_result(event)

    sub = await bus.nc.subscribe(bus.subject("evaluate.completed"), cb=on_completed)
    done.add_done_callback(lambda _: asyncio.ensure_future(sub.unsubscribe()))
    event = EvaluationRequested(tenant=TENANT, evaluation_id=evaluation_id, **fields)  # type: ignore[arg-type]
    await Publisher(bus, "gateway").publish(event, event_id=evaluation_id)
    return evaluation_id, done


async def run_evaluation(
    settings: Settings, bus: Bus, timeout_s: float = 30, **fields: object
) -> tuple[str, EvaluationCompleted]:
    """One run on an evaluate replica started for it: its id and its EvaluationCompleted."""
    evaluate = await start_evaluate(settings)
    try:
        evaluation_id, done = await request(bus, **fields)
        return evaluation_id, await asyncio.wait_for(done, timeout_s)
    finally:
        await evaluate.stop()


async def test_a_run_scores_every_item_through_the_live_pipeline_and_stores_its_results(
    settings: Settings, bus: Bus, generate: tuple[Service, ScriptedModel]
) -> None:
    await put_set(bus, ITEMS)
    completions: list[GenerationCompleted] = []

    async def on_generation(msg: Msg) -> None:
        completions.append(decode_event(msg.data, GenerationCompleted))

    watch = await bus.nc.subscribe(bus.subject("generate.completed"), cb=on_generation)
    try:
        evaluation_id, completed = await run_evaluation(settings, bus, 60, set_name="zorbulon")
    finally:
        await watch.unsubscribe()
    assert completed.status == "completed", completed.reason
    assert completed.items == 4 and completed.set_version == 1
    metrics = completed.metrics
    # The scripted answer names Castellane (pass), not 1987 or Geneva (fail); France is refused.
    assert metrics["must_include"] == pytest.approx(1 / 3)
    assert metrics["unanswerable_refused"] == 1.0 and metrics["answerable_refused"] == 0.0
    assert metrics["recall_at_k"] == 1.0 and metrics["degenerate"] == 0.0
    assert metrics["grounded_sentences"] == 1.0
    store = await EvaluationStore.open(bus)
    run = await store.get(evaluation_id)
    assert run is not None and run.status == "completed" and run.done == 4
    rows = await store.results(run)
    assert [row["item_id"] for row in rows] == ["who", "when", "where", "capital"]
    assert rows[0]["score"]["must_include"] is True and rows[1]["score"]["must_include"] is False
    report = await store.get_object(run.report_object)
    assert report is not None and b"must_include" in report
    # Evaluation traffic is marked so that nothing counts it as a user's.
    assert completions and all(c.purpose == "evaluation" for c in completions)


async def test_a_second_run_with_a_baseline_is_compared_and_gated(
    settings: Settings, bus: Bus, generate: tuple[Service, ScriptedModel], retrieval: dict[str, bool]
) -> None:
    await put_set(bus, ITEMS)
    evaluate = await start_evaluate(settings)
    try:
        first_id, first = await request(bus, set_name="zorbulon")
        assert (await asyncio.wait_for(first, 60)).status == "completed"
        retrieval["relevant"] = False  # worse: the index lost the document, every answer is "don't know"
        second_id, second = await request(bus, set_name="zorbulon", baseline=first_id)
        completed = await asyncio.wait_for(second, 60)
    finally:
        await evaluate.stop()
    assert completed.status == "completed" and completed.baseline == first_id
    assert completed.passed is False
    assert any("must_include" in failure for failure in completed.gate_failures)
    store = await EvaluationStore.open(bus)
    run = await store.get(second_id)
    assert run is not None and run.chart_object
    chart = await store.get_object(run.chart_object)
    assert chart is not None and chart.startswith(b"\x89PNG")
    must_include = next(row for row in run.comparison if row["metric"] == "must_include")
    assert must_include["diff"] < 0


async def test_with_no_generate_replica_the_run_fails_with_the_reason_instead_of_hanging(
    settings: Settings, bus: Bus, retrieval: dict[str, bool]
) -> None:
    await put_set(bus, ITEMS)
    _, completed = await run_evaluation(settings, bus, set_name="zorbulon")
    assert completed.status == "failed"
    assert "generate.load" in completed.reason


async def test_a_run_interrupted_by_a_restart_resumes_where_it_stopped(
    settings: Settings, bus: Bus, generate: tuple[Service, ScriptedModel], short_ack_wait: None
) -> None:
    items = [
        GoldenItem(id=f"q{i}", question="Who invented the Zorbulon protocol?",
                   must_include=("Castellane",), relevant=("zorbulon",))
        for i in range(12)
    ]
    await put_set(bus, items, name="long")
    _, model = generate
    model.delay_s = 0.05  # ~0.5 s per answer: the run is still going when its replica stops
    store = await EvaluationStore.open(bus)
    progressed: asyncio.Queue[EvaluationProgress] = asyncio.Queue()

    async def on_progress(msg: Msg) -> None:
        progressed.put_nowait(decode_event(msg.data, EvaluationProgress))

    watch = await bus.nc.subscribe(bus.subject("evaluate.progress"), cb=on_progress)
    first = await start_evaluate(settings)
    evaluation_id, done = await request(bus, set_name="long")
    progress = await asyncio.wait_for(progressed.get(), 30)  # the first report: 5 items scored
    # The replica dies mid-run: its handler is cut off where it stands (no ack, no nak), as a SIGKILL
    # would; a clean stop would let the run finish within the worker's grace period instead.
    for worker in first.workers:
        for task in worker._inflight:
            task.cancel()
    await first.stop()
    await watch.unsubscribe()
    assert progress.done == 5 and progress.total == 12
    asked_before = len(model.asked)
    second = await start_evaluate(settings)
    try:
        completed = await asyncio.wait_for(done, 60)
    finally:
        await second.stop()
    assert completed.status == "completed" and completed.items == 12
    assert completed.metrics["must_include"] == 1.0
    run = await store.get(evaluation_id)
    assert run is not None and run.attempts == 2
    # The second replica asked only what the first had not scored (at most the items in flight again).
    assert len(model.asked) - asked_before <= 12 - 5 + 2
    rows = await store.results(run)
    assert sorted(row["item_id"] for row in rows) == sorted(item.id for item in items)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        pytest.param(
            {"set_name": "nope"}, ["unknown golden set 'nope'", "zorbulon"], id="a_set_naming_those_that_exist"
        ),
        pytest.param({"floors": {"wisdom": 0.5}}, ["wisdom"], id="a_gate_metric"),
        pytest.param(
            {"model": "gemma-3-270m"}, ["unknown model 'gemma-3-270m'", "scripted:1"],
            id="a_model_naming_what_the_generate_replicas_serve",
        ),
    ],
)
async def test_a_run_asking_for_something_unknown_fails_at_once_naming_it(
    settings: Settings, bus: Bus, generate: tuple[Service, ScriptedModel], fields: dict[str, object], named: list[str]
) -> None:
    await put_set(bus, ITEMS)
    _, completed = await run_evaluation(settings, bus, **{"set_name": "zorbulon", **fields})
    assert completed.status == "failed"
    assert all(part in completed.reason for part in named), completed.reason
    _, model = generate
    assert model.prompts == []  # nothing was asked before the run failed
