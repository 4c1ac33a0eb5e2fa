"""Golden sets and evaluation runs: checked against the registries, stored, then handed to the evaluate service."""

from __future__ import annotations

import re

import msgspec

from gyre_contracts import EvaluationRequested, RetrievalOverride, SamplingParams, new_id
from gyre_gateway.errors import ApiError
from gyre_gateway.evaluations.protocol import (
    EVALUATION_ID_PATTERN,
    EvaluationCreate,
    EvaluationOut,
    EvaluationReceipt,
    GoldenSetCounts,
    GoldenSetList,
    GoldenSetOut,
    GoldenSetReceipt,
    GoldenSetSummary,
    Progress,
    RetrievalSettings,
    SamplingSettings,
)
from gyre_gateway.media_type import JSONL_MEDIA_TYPES
from gyre_gateway.upstream import connected, publish
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service
from gyre_runtime.state.evaluations import EvaluationRun, EvaluationStore, GoldenSetStore, UnknownName, new_run
from gyre_runtime.state.golden_sets import (
    GoldenItem,
    GoldenSetError,
    describe,
    dump_golden_jsonl,
    parse_golden_jsonl,
    set_checksum,
)
from gyre_runtime.state.models import ModelRegistry
from gyre_runtime.state.prompts import PromptError, PromptRegistry

log = get_logger()

EVALUATION_ID_PREFIX = "eval-"
JSONL_MEDIA_TYPE = "application/x-ndjson"
_EVALUATION_ID = re.compile(EVALUATION_ID_PATTERN)


async def golden_sets(service: Service) -> GoldenSetStore:
    return await GoldenSetStore.open(connected(service).bus)


async def evaluations(service: Service) -> EvaluationStore:
    return await EvaluationStore.open(connected(service).bus)


# ---------------------------------------------------------------- golden sets


def malformed_set(name: str, error: GoldenSetError, *, unit: str = "line") -> ApiError:
    """The 400 for a set that cannot be stored: the line (or JSON item) of the first problem and what it is."""
    where = f" at {unit} {error.line}" if error.line else ""
    return ApiError(
        400, f"golden set {name!r} is malformed{where}: {error.reason}", code="invalid_golden_set", param="body"
    )


def unsupported_set_type(media_type: str) -> ApiError:
    return ApiError(
        415,
        f"Content-Type {media_type!r} is not a golden set: send its JSONL as {JSONL_MEDIA_TYPE} (or text/plain), "
        'or application/json {"items": [...]}',
        code="unsupported_media_type",
    )


def items_from_json(name: str, data: bytes) -> list[GoldenItem]:
    """``{"items": [...]}`` -> items; a problem is reported by item number (1-based), as a line is for JSONL."""
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(value, dict) or not isinstance(value.get("items"), list):
        raise ApiError(
            400,
            'a golden set sent as application/json is {"items": [{"question": ...}, ...]}; '
            f"or send the JSONL file as {JSONL_MEDIA_TYPE}",
            code="invalid_value",
            param="items",
        )
    # One item a line, so that the JSONL parser's line numbers are item numbers.
    lines = []
    for number, item in enumerate(value["items"], start=1):
        if not isinstance(item, dict):
            raise malformed_set(name, GoldenSetError(number, f"expected a JSON object, got {type(item).__name__}"),
                                unit="item")
        lines.append(msgspec.json.encode(item))
    try:
        return parse_golden_jsonl(b"\n".join(lines))
    except GoldenSetError as exc:
        raise malformed_set(name, exc, unit="item") from exc


def items_from_body(name: str, data: bytes, content_type: str) -> list[GoldenItem]:
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json")):
        return items_from_json(name, data)
    if media_type and media_type not in JSONL_MEDIA_TYPES:
        raise unsupported_set_type(media_type)
    try:
        return parse_golden_jsonl(data)
    except GoldenSetError as exc:
        raise malformed_set(name, exc) from exc


async def put_golden_set(
    service: Service, tenant: str, name: str, data: bytes, content_type: str
) -> GoldenSetReceipt:
    """The next version of ``name``, or the latest one when it already holds exactly these items."""
    items = items_from_body(name, data, content_type)
    store = await golden_sets(service)
    try:
        version, created = await store.put(tenant, name, items)
    except GoldenSetError as exc:
        raise malformed_set(name, exc) from exc
    log.info("golden_set_stored", name=name, version=version, items=len(items), created=created)
    return GoldenSetReceipt(name=name, version=version, items=len(items), checksum=set_checksum(items), created=created)


async def list_golden_sets(service: Service, tenant: str) -> GoldenSetList:
    infos = await (await golden_sets(service)).infos(tenant)
    return GoldenSetList(
        sets=[
            GoldenSetSummary(
                name=info.name, versions=list(info.versions), latest=info.latest, items=info.items,
                checksum=info.checksum,
            )
            for info in infos
        ]
    )


def set_not_found(exc: UnknownName, *, version_asked: bool) -> ApiError:
    # UnknownName says either that the set is unknown or that the version is; the param says which.
    param = "set" if not version_asked or str(exc).startswith("unknown golden set") else "set_version"
    return ApiError(404, str(exc), code="golden_set_not_found", param=param)


async def read_golden_set(service: Service, tenant: str, name: str, version: int) -> tuple[int, list[GoldenItem]]:
    try:
        return await (await golden_sets(service)).get(tenant, name, version)
    except UnknownName as exc:
        raise set_not_found(exc, version_asked=bool(version)) from exc


async def golden_set(service: Service, tenant: str, name: str, version: int) -> GoldenSetOut:
    chosen, items = await read_golden_set(service, tenant, name, version)
    return GoldenSetOut(
        name=name,
        version=chosen,
        checksum=set_checksum(items),
        counts=GoldenSetCounts(**describe(items)),
        items=[msgspec.to_builtins(item) for item in items],
    )


async def export_golden_set(service: Service, tenant: str, name: str, version: int) -> tuple[int, bytes]:
    chosen, items = await read_golden_set(service, tenant, name, version)
    return chosen, dump_golden_jsonl(items)


# ---------------------------------------------------------------- starting a run


def check_sampling(sampling: SamplingSettings, settings: Settings) -> SamplingParams:
    """The contract's sampling; ``max_tokens`` left out is the deployment's, as for a user's request."""
    if sampling.max_tokens is not None and sampling.max_tokens > settings.max_tokens_limit:
        raise ApiError(
            400,
            f"sampling.max_tokens: {sampling.max_tokens} is over this deployment's limit of "
            f"{settings.max_tokens_limit} tokens (GYRE_MAX_TOKENS_LIMIT, the model's context window)",
            code="invalid_value",
            param="sampling.max_tokens",
        )
    return SamplingParams(
        max_tokens=sampling.max_tokens or settings.max_new_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        seed=sampling.seed,
    )


def retrieval_override(retrieval: RetrievalSettings, settings: Settings) -> RetrievalOverride:
    """The contract's retrieval; ``top_k`` left out is the deployment's, as for a user's request."""
    top_k = settings.retrieval_top_k if retrieval.top_k is None else retrieval.top_k
    return RetrievalOverride(mode=retrieval.mode, top_k=top_k)


async def check_prompt_label(service: Service, label: str) -> None:
    if not label:
        return  # the production label: what every user's request gets
    registry = await PromptRegistry.open(connected(service).bus)
    try:
        await registry.resolve(service.settings.prompt_name, label=label)
    except PromptError as exc:
        raise ApiError(404, str(exc), code="prompt_label_not_found", param="prompt_label") from exc


async def check_model(service: Service, model: str) -> None:
    if not model:
        return  # the served model
    entries = [e for e in await (await ModelRegistry.open(connected(service).bus)).list()
               if e.kind == "generation"]
    if any(model in (entry.id, entry.version) for entry in entries):
        return
    known = ", ".join(f"{e.id} ({e.version})" for e in entries) or "none: no generate replica registered one yet"
    raise ApiError(
        404, f"unknown model {model!r}; generation models in the registry: {known}", code="model_not_found",
        param="model",
    )


async def check_baseline(store: EvaluationStore, tenant: str, baseline: str, set_name: str) -> None:
    if not baseline:
        return
    try:
        run = await store.require(baseline, tenant)
    except UnknownName as exc:
        raise ApiError(
            404, f"unknown baseline evaluation {baseline!r} (for this API key's tenant)",
            code="evaluation_not_found", param="baseline",
        ) from exc
    # The service would fail the run for these: say so now, while the caller is here to read it.
    if run.set_name != set_name:
        raise ApiError(
            400, f"baseline evaluation {baseline!r} ran golden set {run.set_name!r}, not {set_name!r}: "
            "a comparison pairs the answers to the same questions",
            code="invalid_value", param="baseline",
        )
    if run.status != "completed":
        why = f" ({run.reason})" if run.reason else ""
        raise ApiError(
            409, f"baseline evaluation {baseline!r} is {run.status}{why}: a baseline must have completed",
            code="baseline_not_completed", param="baseline",
        )


async def create_evaluation(
    service: Service, tenant: str, body: EvaluationCreate, *, traceparent: str | None = None
) -> EvaluationReceipt:
    """Check every name against what exists, store the queued run, then publish its request.

    The run record comes first so that a ``GET`` right after the 202 finds it. The set version is
    pinned to the one that is the latest now: a set changed while the run waits does not change it.
    """
    sampling = check_sampling(body.sampling, service.settings) if body.sampling is not None else None
    version, _ = await read_golden_set(service, tenant, body.set, body.set_version)
    await check_prompt_label(service, body.prompt_label)
    await check_model(service, body.model)
    runs = await evaluations(service)
    await check_baseline(runs, tenant, body.baseline, body.set)
    event = EvaluationRequested(
        tenant=tenant,
        evaluation_id=EVALUATION_ID_PREFIX + new_id(),
        set_name=body.set,
        set_version=version,
        prompt_label=body.prompt_label,
        model=body.model,
        retrieval=retrieval_override(body.retrieval, service.settings) if body.retrieval else None,
        sampling=sampling,
        baseline=body.baseline,
        floors=dict(body.floors),
    )
    run = new_run(event)
    await runs.create(run)
    try:
        await publish(service, event, event_id=event.evaluation_id, traceparent=traceparent)
    except ApiError as exc:
        # Nobody will ever pick the run up: a queued record would wait for ever.
        run.status, run.reason = "failed", exc.message
        await runs.save(run)
        raise
    log.info("evaluation_requested", evaluation_id=event.evaluation_id, set=body.set, set_version=version)
    return EvaluationReceipt(id=event.evaluation_id, status="queued", set=body.set, set_version=version)


# ---------------------------------------------------------------- reading a run


def evaluation_not_found(evaluation_id: str) -> ApiError:
    return ApiError(
        404, f"no evaluation {evaluation_id!r} (for this API key's tenant)", code="evaluation_not_found"
    )


async def require_run(store: EvaluationStore, tenant: str, evaluation_id: str) -> EvaluationRun:
    # An id that is no KV key token (a dot, a wildcard) cannot name a run.
    if not _EVALUATION_ID.match(evaluation_id):
        raise evaluation_not_found(evaluation_id)
    try:
        return await store.require(evaluation_id, tenant)
    except UnknownName as exc:
        raise evaluation_not_found(evaluation_id) from exc


def evaluation_out(run: EvaluationRun) -> EvaluationOut:
    completed = run.status == "completed"
    return EvaluationOut(
        id=run.id,
        status=run.status,
        reason=run.reason,
        set=run.set_name,
        set_version=run.set_version,
        progress=Progress(done=run.done, total=run.total, errors=run.errors),
        metrics=dict(run.metrics),
        passed=run.passed,
        gate_failures=list(run.gate_failures),
        baseline=run.baseline,
        comparison=list(run.comparison),
        settings=dict(run.settings),
        prompt_version=run.prompt_version,
        model_version=run.model_version,
        attempts=run.attempts,
        created_at=run.created_at,
        updated_at=run.updated_at,
        report_url=f"/v1/evaluations/{run.id}/report" if completed and run.report_object else None,
        chart_url=f"/v1/evaluations/{run.id}/chart.png" if completed and run.chart_object else None,
    )


async def evaluation(service: Service, tenant: str, evaluation_id: str, *, with_items: bool) -> EvaluationOut:
    store = await evaluations(service)
    run = await require_run(store, tenant, evaluation_id)
    out = evaluation_out(run)
    if with_items:
        out.items = await store.results(run)
    return out


async def report(service: Service, tenant: str, evaluation_id: str) -> bytes:
    store = await evaluations(service)
    run = await require_run(store, tenant, evaluation_id)
    if run.status != "completed":
        why = f" ({run.reason})" if run.reason else ""
        raise ApiError(
            404,
            f"evaluation {evaluation_id!r} is {run.status}{why}: its report is written when it completes",
            code="report_not_found",
        )
    data = await store.get_object(run.report_object) if run.report_object else None
    if data is None:
        raise ApiError(404, f"evaluation {evaluation_id!r} has no report stored", code="report_not_found")
    return data


async def chart(service: Service, tenant: str, evaluation_id: str) -> bytes:
    store = await evaluations(service)
    run = await require_run(store, tenant, evaluation_id)
    data = await store.get_object(run.chart_object) if run.chart_object else None
    if data is None:
        raise ApiError(
            404,
            f"evaluation {evaluation_id!r} ({run.status}) has no chart: one is drawn when a run with a baseline "
            "completes",
            code="chart_not_found",
        )
    return data
