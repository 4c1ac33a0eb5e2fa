"""Back-pressure: ask the generate replicas how busy they are before queueing another chat request.

``gyre.generate.load`` is core NATS request/reply; the first replica to answer speaks for the
deployment (replicas share the generate consumer, so one's queue is a fair sample of all). A full
queue is a 429 with Retry-After; no replica listening at all is a 503: a request is never parked
where nothing will take it. A replica that listens but does not answer within
GYRE_GENERATE_LOAD_TIMEOUT_S is busy computing (a generation holds its CPU): the request is
admitted, and the first-token timeout still bounds the wait.
"""

from __future__ import annotations

from gyre_contracts import GenerationLoad, GenerationLoadRequest
from gyre_gateway.errors import ApiError, retry_later
from gyre_gateway.upstream import connected
from gyre_runtime.bus import requests
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service

log = get_logger()

# A generation takes seconds on a CPU; retrying sooner than this mostly meets the same full queue.
BUSY_RETRY_AFTER_S = 2
UNAVAILABLE_RETRY_AFTER_S = 1


def over_capacity(load: GenerationLoad, allowance: int) -> bool:
    """Whether one more request would wait beyond ``allowance`` places past what the replicas run at once."""
    return bool(load.in_flight >= load.capacity + allowance)


def queue_full(load: GenerationLoad, allowance: int) -> ApiError:
    return retry_later(
        429,
        f"the generate service is busy ({load.in_flight} requests in flight for {load.capacity} places and "
        f"{allowance} waiting); retry after {BUSY_RETRY_AFTER_S}s",
        code="generation_queue_full",
        after_s=BUSY_RETRY_AFTER_S,
    )


def generate_unavailable(reason: str) -> ApiError:
    return retry_later(
        503,
        f"generate service unavailable: {reason}; start `gyre-generate`, or retry shortly",
        code="service_unavailable",
        after_s=UNAVAILABLE_RETRY_AFTER_S,
    )


async def generation_load(service: Service, tenant: str) -> GenerationLoad | None:
    """One replica's load; None when replicas listen but none answered in time; 503 when none listens."""
    bus = connected(service).bus
    timeout = service.settings.generate_load_timeout_s
    source = f"{bus.settings.subject_prefix}/gateway"
    try:
        return await requests.request(
            bus, GenerationLoadRequest(tenant=tenant), GenerationLoad, source=source, timeout_s=timeout
        )
    except requests.NoResponder as exc:
        raise generate_unavailable(str(exc)) from exc
    except requests.RequestTimeout:
        log.warning("generation_load_unanswered", timeout_s=timeout)
        return None
    except requests.BusClosed as exc:
        raise generate_unavailable("the gateway lost its connection to the event bus") from exc
    except requests.BadReply as exc:
        raise ApiError(502, str(exc), code="bad_upstream_reply") from exc


async def admit_generation(service: Service, tenant: str) -> None:
    """Return when there is room for one more generation; else raise the 429 or 503 to answer."""
    load = await generation_load(service, tenant)
    allowance = service.settings.generation_queue_allowance
    if load is not None and over_capacity(load, allowance):
        log.warning("generation_refused_busy", in_flight=load.in_flight, capacity=load.capacity, allowance=allowance)
        raise queue_full(load, allowance)
