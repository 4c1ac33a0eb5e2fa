"""The gateway's FastAPI app: bus connection in the lifespan, health and metrics, every endpoint group's router."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response

from gyre_gateway.auth import ApiKeyring, StoredKeys, authenticated_caller, require_operator
from gyre_gateway.body_limit import BodySizeLimitMiddleware, max_body_bytes
from gyre_gateway.chat.api_router import router as chat_router
from gyre_gateway.documents.api_router import router as documents_router
from gyre_gateway.embeddings.api_router import router as embeddings_router
from gyre_gateway.errors import install_error_handlers
from gyre_gateway.evaluations.api_router import router as evaluations_router
from gyre_gateway.feedback.api_router import router as feedback_router
from gyre_gateway.media_type import require_readable_body
from gyre_gateway.metrics import RequestMetricsMiddleware
from gyre_gateway.models.api_router import router as models_router
from gyre_gateway.rate_limit import RateLimiter
from gyre_gateway.search.api_router import router as search_router
from gyre_gateway.web.api_router import router as web_router
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.operator_access import OperatorAccess
from gyre_runtime.service import Service, metrics_response, run_service

log = get_logger()

SERVICE_NAME = "gateway"

DESCRIPTION = """\
Gyre's HTTP API: submit documents, search them, ask questions answered from them with
citations (OpenAI-compatible chat completions and embeddings), and rate the answers.

Every `/v1` route needs `Authorization: Bearer <key>`; the key decides the tenant, and a tenant
only ever sees its own documents, answers and feedback. A key has scopes: `ingest` (documents),
`query` (search, chat, embeddings, models), `feedback`, `admin` (all); without the scope: 403. Over
the key's rate: 429 with `Retry-After`. Errors use OpenAI's format:
`{"error": {"message", "type", "param", "code"}}`.
"""


def install_api_docs(app: FastAPI, mode: str) -> None:
    """``/docs`` (Swagger UI) and ``/openapi.json`` as GYRE_API_DOCS says: public, behind any valid API key, or off.

    The API description lists every route and field, which helps an attacker as much as a user:
    by default only callers with a key see it.
    """
    if mode == "off":
        return
    needs_key = [Depends(authenticated_caller)] if mode == "auth" else []

    @app.get("/openapi.json", include_in_schema=False, dependencies=needs_key)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=needs_key)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")


def create_app(settings: Settings) -> FastAPI:
    service = Service(SERVICE_NAME, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service.lifespan():  # the shell every service runs in: start retries, stop
            yield

    app = FastAPI(
        title="Gyre",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # install_api_docs serves them as GYRE_API_DOCS says
        redoc_url=None,
        openapi_url=None,
        dependencies=[Depends(require_readable_body)],  # 415 for a body its route cannot read
    )
    app.state.service = service
    app.state.keyring = ApiKeyring(settings)
    app.state.stored_keys = StoredKeys(settings.api_key_cache_s)
    app.state.rate_limiter = RateLimiter()
    app.state.input_rate_limiter = RateLimiter()  # /v1/embeddings inputs per key
    app.state.operator_access = OperatorAccess(settings)
    app.state.started = service.started  # set once the bus is connected (tests await it instead of polling)
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        document_bytes=max_body_bytes(settings.max_document_chars),
        request_bytes=settings.max_request_bytes,
    )
    app.add_middleware(RequestMetricsMiddleware)  # added last = outermost: it also counts the 413s

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """Liveness: the process answers (500 once its start failed for good)."""
        return service.health()

    @app.get("/readyz", tags=["operations"])
    async def readyz(request: Request) -> JSONResponse:
        """Readiness: connected to the bus, its topology there (503 with the reason otherwise)."""
        return service.readiness()

    @app.get("/metrics", tags=["operations"], dependencies=[Depends(require_operator)])
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process; needs the metrics token (GYRE_METRICS_TOKEN) or an operator key."""
        return metrics_response()

    for router in (documents_router, search_router, chat_router, embeddings_router, models_router, feedback_router):
        app.include_router(router)
    app.include_router(evaluations_router)
    app.include_router(web_router)  # the chat page at / and /chat
    install_api_docs(app, settings.api_docs)
    return app


def main() -> None:
    run_service(SERVICE_NAME, create_app)


if __name__ == "__main__":
    main()
