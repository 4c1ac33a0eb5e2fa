"""Improve service wiring: the FeedbackRecorded consumer and a /tallies view."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gyre_improve.handlers import ImproveHandler, TallyStore
from gyre_runtime.config import Settings
from gyre_runtime.service import Service, run_service


def create_app(settings: Settings) -> Any:
    async def tallies(request: Request) -> JSONResponse:
        store: TallyStore | None = service.state.get("tallies")
        if store is None:
            return JSONResponse({"error": "not ready"}, status_code=503)
        return JSONResponse({"tallies": await store.all()})

    service = Service("improve", settings, routes=[Route("/tallies", tallies)])

    @service.on_start
    async def wire(svc: Service) -> None:
        store = await TallyStore.open(svc.bus)
        svc.state["tallies"] = store
        svc.consume("improve", ImproveHandler(store))

    return service.asgi()


def main() -> None:
    run_service("improve", create_app)
