"""Feedback service wiring."""

from __future__ import annotations

from typing import Any

from gyre_feedback.handlers import FeedbackHandler
from gyre_runtime.config import Settings
from gyre_runtime.service import Service, run_service
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.tenants import TenantPolicies


def create_app(settings: Settings) -> Any:
    service = Service("feedback", settings)

    @service.on_start
    async def wire(svc: Service) -> None:
        generations = await GenerationStore.open(svc.bus)
        policies = await TenantPolicies.open(svc.bus)
        svc.consume("feedback", FeedbackHandler(generations, svc.publisher, policies))

    return service.asgi()


def main() -> None:
    run_service("feedback", create_app)
