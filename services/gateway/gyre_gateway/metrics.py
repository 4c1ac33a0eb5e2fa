"""The gateway's Prometheus metrics (names defined once, here) and the middleware that records them."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Seconds to the end of a response: from a health check to a long answer streamed in full.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

REQUESTS = Counter(
    "gyre_gateway_requests_total", "HTTP requests the gateway answered, by method, route template and status code.",
    ["method", "route", "status"],
)  # fmt: skip
REQUEST_SECONDS = Histogram(
    "gyre_gateway_request_seconds",
    "Time from request to the end of the response body (whole stream for SSE), by method and route.",
    ["method", "route"], buckets=REQUEST_BUCKETS,
)  # fmt: skip

UNMATCHED_ROUTE = "unmatched"  # unknown paths share one label, so scanners cannot blow up the label set


def route_label(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Pure ASGI, so a streamed response is timed to its last byte, not to its headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            method, route = scope.get("method", ""), route_label(scope)
            REQUESTS.labels(method, route, str(status)).inc()
            REQUEST_SECONDS.labels(method, route).observe(time.perf_counter() - started)
