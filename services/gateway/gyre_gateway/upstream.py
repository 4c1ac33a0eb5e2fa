"""How endpoints reach the bus: the gateway's Service (connection, publisher) and request/reply calls."""

from __future__ import annotations

from typing import TypeVar

import nats.errors
from fastapi import Request

from gyre_contracts import Event
from gyre_gateway.errors import ApiError, bus_hiccup, retry_later
from gyre_runtime.bus import requests
from gyre_runtime.service import Service

E = TypeVar("E", bound=Event)

SOURCE_SUFFIX = "gateway"


def service_of(request: Request) -> Service:
    """The gateway's Service (connected or not: validation needs only its settings)."""
    service: Service = request.app.state.service
    return service


def connected(service: Service) -> Service:
    """``service`` once its bus is connected; 503 while it is not (starting, reconnecting, stopping).

    Endpoint logic calls this after validating the request, so a bad request is a 400 even then.
    """
    if not service.ready or not service.bus.nc.is_connected:
        detail = f" ({service.startup_error})" if service.startup_error else ""
        raise retry_later(
            503,
            f"the gateway is not connected to the event bus yet{detail}; retry shortly (see /readyz)",
            code="bus_unavailable",
            after_s=1,
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
    bus = connected(service).bus
    source = f"{bus.settings.subject_prefix}/{SOURCE_SUFFIX}"
    try:
        return await requests.request(
            bus, event, reply_type, source=source, timeout_s=bus.settings.request_timeout_s, traceparent=traceparent
        )
    except requests.NoResponder as exc:
        raise retry_later(503, unavailable, code="service_unavailable", after_s=1) from exc
    except requests.RequestTimeout as exc:
        raise ApiError(504, str(exc), code="timeout") from exc
    except requests.BusClosed as exc:
        raise ApiError(503, "the gateway lost its connection to the event bus", code="bus_unavailable") from exc
    except requests.BadReply as exc:
        raise ApiError(502, str(exc), code="bad_upstream_reply") from exc


async def publish_core(service: Service, event: Event, subject_suffix: str, *, traceparent: str | None = None) -> None:
    """Fire-and-forget on core NATS (no stream keeps it): for signals only a live subscriber needs."""
    await connected(service).publisher.emit(event, subject=subject_suffix, traceparent=traceparent)


async def publish(service: Service, event: Event, *, event_id: str, traceparent: str | None = None) -> None:
    """Publish to JetStream and wait for the stream's ack; a bus that cannot take it -> 503."""
    try:
        await connected(service).publisher.publish(event, event_id=event_id, traceparent=traceparent)
    except ApiError:
        raise
    except (nats.errors.Error, TimeoutError) as exc:
        raise bus_hiccup(f"the event bus did not accept {event.event_type()}", exc, code="publish_failed") from exc


def upstream_failure(error: str, service_name: str) -> ApiError:
    """A reply that carries an error: the service answered but could not do the work."""
    return ApiError(502, f"{service_name} service failed: {error}", code="upstream_error")


