"""HTTP routes of the evaluation endpoints: golden sets, runs, reports and charts (admin keys only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from gyre_gateway.auth import tenant_with_scope
from gyre_gateway.evaluations.protocol import (
    SET_NAME_PATTERN,
    EvaluationCreate,
    EvaluationOut,
    EvaluationReceipt,
    GoldenSetList,
    GoldenSetOut,
    GoldenSetReceipt,
)
from gyre_gateway.evaluations.serving import (
    JSONL_MEDIA_TYPE,
    chart,
    create_evaluation,
    evaluation,
    export_golden_set,
    golden_set,
    list_golden_sets,
    put_golden_set,
    report,
)
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])

# Evaluations run the whole pipeline on a tenant's behalf and change what it is gated on: admin keys only.
AdminTenant = Annotated[str, Depends(tenant_with_scope("admin"))]
SetName = Annotated[str, Path(pattern=SET_NAME_PATTERN, description="1-64 letters, digits, '-' or '_'.")]
SetVersion = Annotated[int, Query(ge=0, description="Version of the set; 0 or absent: the latest.")]

# The set routes come first: ``/sets`` would otherwise be read as an evaluation id.


@router.get("/sets", response_model=GoldenSetList)
async def get_sets(tenant: AdminTenant, request: Request) -> GoldenSetList:
    """This tenant's golden sets: versions, and the latest one's item count and checksum."""
    return await list_golden_sets(service_of(request), tenant)


@router.put(
    "/sets/{name}",
    status_code=201,
    response_model=GoldenSetReceipt,
    responses={200: {"description": "The items equal the latest version's: no new version was made."}},
)
async def put_set(name: SetName, tenant: AdminTenant, request: Request, response: Response) -> GoldenSetReceipt:
    """Store a golden set as its next version: the JSONL file as `application/x-ndjson` (or `text/plain`),
    or `application/json` `{"items": [...]}`. A malformed set is a 400 naming the line and the problem."""
    receipt = await put_golden_set(
        service_of(request), tenant, name, await request.body(), request.headers.get("content-type", "")
    )
    if not receipt.created:
        response.status_code = 200
    return receipt


@router.get("/sets/{name}", response_model=GoldenSetOut)
async def get_set(name: SetName, tenant: AdminTenant, request: Request, version: SetVersion = 0) -> GoldenSetOut:
    """One version of a golden set: its items and counts."""
    return await golden_set(service_of(request), tenant, name, version)


@router.get(
    "/sets/{name}/export",
    response_class=Response,
    responses={200: {"content": {JSONL_MEDIA_TYPE: {}}, "description": "The set's JSONL, one item a line."}},
)
async def export_set(name: SetName, tenant: AdminTenant, request: Request, version: SetVersion = 0) -> Response:
    """One version of a golden set as its JSONL file."""
    chosen, data = await export_golden_set(service_of(request), tenant, name, version)
    return Response(
        data,
        media_type=JSONL_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}-v{chosen}.jsonl"'},
    )


@router.post("", status_code=202, response_model=EvaluationReceipt)
async def start_evaluation(body: EvaluationCreate, tenant: AdminTenant, request: Request) -> EvaluationReceipt:
    """Run a golden set through retrieve + generate; poll `GET /v1/evaluations/{id}` for progress and metrics.

    Unknown set, version, prompt label, model or baseline: 404 naming those that exist.
    """
    return await create_evaluation(service_of(request), tenant, body, traceparent=traceparent_of(request))


@router.get("/{evaluation_id}", response_model=EvaluationOut)
async def get_evaluation(
    evaluation_id: str,
    tenant: AdminTenant,
    request: Request,
    items: Annotated[bool, Query(description="Include the per-item rows.")] = True,
) -> EvaluationOut:
    """A run: status, progress, metrics, the gate's verdict, the comparison with its baseline, its items."""
    return await evaluation(service_of(request), tenant, evaluation_id, with_items=items)


@router.get(
    "/{evaluation_id}/report",
    response_class=Response,
    responses={200: {"content": {"text/markdown": {}}, "description": "The run's report."}},
)
async def get_report(evaluation_id: str, tenant: AdminTenant, request: Request) -> Response:
    """The markdown report of a completed run (404 before, saying its status)."""
    data = await report(service_of(request), tenant, evaluation_id)
    return Response(data, media_type="text/markdown; charset=utf-8")


@router.get(
    "/{evaluation_id}/chart.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "Baseline vs this run, per metric."}},
)
async def get_chart(evaluation_id: str, tenant: AdminTenant, request: Request) -> Response:
    """The comparison chart of a completed run with a baseline."""
    return Response(await chart(service_of(request), tenant, evaluation_id), media_type="image/png")
