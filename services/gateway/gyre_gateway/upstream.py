"""How endpoints reach the bus: the gateway's Service (connection, publisher) and request/reply calls."""

from __future__ import annotations

from typing import TypeVar

import nats.errors
from fastapi import Request

from gyre_contracts import EnvelopeError, Event, cloudevent_headers, decode_event, encode_body
from gyre_gateway.errors import ApiError
from gyre_runtime.service import Service

E = TypeVar("E", bound=Event)

SOURCE_SUFFIX = "gateway"


def connected_service(request: Request) -> Service:
    """The gateway's Service, or 503 while the bus is not connected (starting, reconnecting, stopping)."""
    service: Service = request.app.state.service
    if not service.ready or not service.bus.nc.is_connected:
        detail = f" ({service.startup_error})" if service.startup_error else ""
        raise ApiError(
            503,
            f"the gateway is not connected to the event bus yet{detail}; retry shortly (see /readyz)",
            code="bus_unavailable",
            headers={"Retry-After": "1"},
        )
    return service


def traceparent_of(request: Request) -> str | None:
    """W3C trace context passed through to the events the request causes."""
    return request.headers.get("traceparent")


async def request_reply(
    service: Service,
    event: Event,
    reply_type: type[E],
    *,
    unavailable: str,
    traceparent: str | None = None,
) -> E:
    """Core NATS request/reply on the event's subject; no responder -> 503, timeout -> 504, bad reply -> 502."""
    bus = service.bus
    source = f"{bus.settings.subject_prefix}/{SOURCE_SUFFIX}"
    headers = cloudevent_headers(event, source=source, traceparent=traceparent)
    headers.pop("Nats-Msg-Id", None)  # not a JetStream publish; nothing to de-duplicate
    timeout = bus.settings.request_timeout_s
    try:
        msg = await bus.nc.request(bus.subject(event.subject), encode_body(event), timeout=timeout, headers=headers)
    except nats.errors.NoRespondersError as exc:
        raise ApiError(503, unavailable, code="service_unavailable", headers={"Retry-After": "1"}) from exc
    except nats.errors.TimeoutError as exc:
        raise ApiError(504, f"no reply within {timeout:g}s on {bus.subject(event.subject)}", code="timeout") from exc
    except nats.errors.ConnectionClosedError as exc:
        raise ApiError(503, "the gateway lost its connection to the event bus", code="bus_unavailable") from exc
    try:
        reply: E = decode_event(msg.data, reply_type, dict(msg.headers or {}))
    except EnvelopeError as exc:
        raise ApiError(502, f"unreadable reply from {bus.subject(event.subject)}: {exc}", code="bad_upstream_reply") from exc
    return reply


def upstream_failure(error: str, service_name: str) -> ApiError:
    """A reply that carries an error: the service answered but could not do the work."""
    return ApiError(502, f"{service_name} service failed: {error}", code="upstream_error")


