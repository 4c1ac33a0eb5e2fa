"""The shell every Gyre service runs in: bus connection, consumers, health, readiness, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import nats.errors
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gyre_runtime.bus.broker import Attached, GyreBroker, RawHandler, declare
from gyre_runtime.bus.connection import Bus, ensure_consumer, ensure_topology
from gyre_runtime.bus.consumer import ConsumerWorker, Handler
from gyre_runtime.bus.permissions import SERVICE_ACCESS, Naming
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.bus.topology import consumers_of
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.logging import configure_logging, get_logger
from gyre_runtime.operator_access import ACCESS_HINT, OperatorAccess

log = get_logger()

Hook = Callable[["Service"], Awaitable[None]]

# Routes anyone may call: an orchestrator's probes carry no credentials. Every other route of a
# service (/metrics, /stats, /tallies, ...) shows figures of every tenant and needs an operator credential.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
# nats-py's connection states, by name (what /readyz says when a started service has lost the bus).
_CONNECTION_STATES = {0: "disconnected", 1: "connected", 2: "closed", 3: "reconnecting", 4: "connecting",
                      5: "draining subscriptions", 6: "draining publishers"}


class OperatorOnlyMiddleware:
    """401 for every route but :data:`OPEN_PATHS` unless the request carries an operator credential."""

    def __init__(self, app: ASGIApp, access: OperatorAccess) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            authorization = Headers(scope=scope).get("authorization")
            if not self.access.allows(authorization):
                refusal = JSONResponse(
                    {"error": f"{scope['path']} is for operators: {ACCESS_HINT}"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Service:
    """Wires one service: call ``consume``/``respond``/``listen`` and ``on_start``/``on_stop``, then
    serve ``asgi()``. The bus is a FastStream broker whose subscribers and publishers are declared from
    the topology and permission tables (:mod:`gyre_runtime.bus.broker`)."""

    def __init__(self, name: str, settings: Settings, routes: Sequence[BaseRoute] = ()) -> None:
        self.name = name
        self.settings = settings
        self.routes = list(routes)
        self._handlers: dict[str, Handler] = {}
        self._responders: dict[str, RawHandler] = {}
        self._listeners: dict[str, RawHandler] = {}
        self.broker: GyreBroker | None = None
        self._start_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []
        self.workers: list[ConsumerWorker] = []
        self.state: dict[str, Any] = {}
        self.ready = False
        self.startup_error: str | None = None
        # Why the start is being retried (the bus did not answer), shown by /readyz meanwhile.
        self.waiting_for_bus: str | None = None
        self.started = asyncio.Event()  # set once started (tests await it rather than poll)
        self._bus: Bus | None = None
        self._publisher: Publisher | None = None

    @property
    def bus(self) -> Bus:
        assert self._bus is not None, "bus not connected yet"
        return self._bus

    @property
    def publisher(self) -> Publisher:
        assert self._publisher is not None, "bus not connected yet"
        return self._publisher

    def consume(self, durable: str, handler: Handler) -> None:
        """Attach a handler to one of this service's consumers from the topology table."""
        known = {c.durable for c in consumers_of(self.name)}
        if durable not in known:
            raise ValueError(f"{durable!r} is not a consumer of {self.name} (known: {sorted(known)})")
        self._handlers[durable] = handler

    def respond(self, subject: str, handler: RawHandler) -> None:
        """Answer requests on ``subject`` (a suffix this service ``serves`` in the permission table);
        one replica answers each, many requests at once."""
        if subject not in SERVICE_ACCESS[self.name].serves:
            raise ValueError(f"{self.name} does not serve {subject!r} (see bus/permissions.py)")
        self._responders[subject] = handler

    def listen(self, subject: str, handler: RawHandler) -> None:
        """Hear every message on ``subject`` (a core subscription this service has in the permission
        table); every replica hears each one."""
        if subject not in SERVICE_ACCESS[self.name].subscribes:
            raise ValueError(f"{self.name} does not subscribe to {subject!r} (see bus/permissions.py)")
        self._listeners[subject] = handler

    def on_start(self, hook: Hook) -> Hook:
        self._start_hooks.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        self._stop_hooks.append(hook)
        return hook

    async def start(self) -> None:
        """Connect, declare the topology, run start hooks (model loading), start subscribers."""
        self.broker = broker = GyreBroker(self.settings, name=f"gyre-{self.name}")
        await broker.connect()
        assert broker.bus is not None
        self._bus = bus = broker.bus
        self._publisher = Publisher(bus, self.name)
        await ensure_topology(bus)
        for hook in self._start_hooks:
            await hook(self)
        workers: dict[str, ConsumerWorker] = {}
        for spec in consumers_of(self.name):
            handler = self._handlers.get(spec.durable)
            if handler is None:
                continue
            await ensure_consumer(bus, spec, self.settings.max_deliver)
            workers[spec.durable] = ConsumerWorker(
                bus, spec, handler, self._publisher, max_deliver=self.settings.max_deliver
            )
        attached = Attached(consumers=workers, responders=self._responders, listeners=self._listeners)
        declared = declare(
            broker, self.name, Naming(self.settings.subject_prefix), attached, inbox_prefix=bus.inbox_prefix
        )
        self._publisher.declared = tuple(declared.publishers)
        self.workers = list(workers.values())
        await broker.start()
        for worker in self.workers:
            worker.keep_fetching_through_bus_errors()
        self.ready = True
        log.info("service_ready", consumers=list(workers), responders=list(declared.responders),
                 listeners=list(declared.listeners))

    async def stop(self) -> None:
        self.ready = False
        broker, self.broker = self.broker, None
        if broker is not None:
            # Nothing new is fetched or answered; then in-flight handlers get their grace period.
            for subscriber in list(broker.subscribers):
                with contextlib.suppress(Exception):
                    await subscriber.stop()
        for worker in self.workers:
            await worker.stop()
        for hook in reversed(self._stop_hooks):
            with contextlib.suppress(Exception):
                await hook(self)
        if broker is not None:
            with contextlib.suppress(Exception):
                await broker.stop()
        elif self._bus is not None:
            with contextlib.suppress(Exception):
                await self._bus.close()
        log.info("service_stopped")

    async def _start_in_background(self) -> None:
        """Start; while the bus does not answer (JetStream electing leaders on a busy cluster, a node
        restarting), undo the partial start and try again with back-off, for as long as it takes.
        Any other failure (a missing model, a bad setting) is final and shows in /healthz."""
        delay = 0.5
        while True:
            try:
                await self.start()
                self.waiting_for_bus = None
                self.started.set()
                return
            except nats.errors.Error as exc:
                self.waiting_for_bus = f"{type(exc).__name__}: {exc}"
                log.warning("service_start_retry", error=self.waiting_for_bus, retry_in_s=delay)
                await self.stop()
                self.workers.clear()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception as exc:
                self.startup_error = f"{type(exc).__name__}: {exc}"
                log.exception("service_start_failed", error=self.startup_error)
                return

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        """An ASGI app's lifespan: start in the background (so /healthz answers while models load and
        while the bus does not), stop at the end."""
        task = asyncio.create_task(self._start_in_background(), name=f"{self.name}-start")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.stop()

    def health(self) -> JSONResponse:
        """Liveness: the process answers (500 once its start failed for good)."""
        if self.startup_error:
            return JSONResponse({"status": "failed", "error": self.startup_error}, status_code=500)
        return JSONResponse({"status": "ok", "service": self.name})

    def readiness(self) -> JSONResponse:
        """Readiness: started and connected to the bus (503 with the reason otherwise)."""
        ready = self.ready and self._bus is not None and self._bus.nc.is_connected
        body: dict[str, Any] = {"ready": ready, "service": self.name}
        if self.startup_error:
            body["error"] = self.startup_error
        elif self.waiting_for_bus and not ready:
            body["waiting_for_bus"] = self.waiting_for_bus
        elif self.ready and not ready and self._bus is not None:  # started, then lost the bus: in what state
            body["bus"] = _CONNECTION_STATES.get(self._bus.nc._status, str(self._bus.nc._status))
        return JSONResponse(body, status_code=200 if ready else 503)

    def asgi(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with self.lifespan():
                yield

        async def healthz(request: Request) -> Response:
            return self.health()

        async def readyz(request: Request) -> Response:
            return self.readiness()

        async def metrics(request: Request) -> Response:
            return metrics_response()

        routes: list[BaseRoute] = [
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            *self.routes,
        ]
        app = Starlette(
            routes=routes,
            lifespan=lifespan,
            middleware=[Middleware(OperatorOnlyMiddleware, access=OperatorAccess(self.settings))],
        )
        app.state.service = self
        return app


def metrics_response() -> Response:
    """This process's Prometheus metrics (every service and the gateway serve them on /metrics)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run_service(name: str, build: Callable[[Settings], Any]) -> None:
    """Console entry point body: settings from the environment, JSON logs, serve over HTTP."""
    settings = load_settings()
    configure_logging(name, settings.log_level)
    port = settings.port_for(name)
    if not port_is_free(settings.http_host, port):
        log.error("port_busy", host=settings.http_host, port=port, hint="set GYRE_HTTP_PORT to a free port")
        sys.exit(2)
    app = build(settings)
    uvicorn.run(
        app, host=settings.http_host, port=port, log_config=None, access_log=False,
        timeout_graceful_shutdown=15,
    )
