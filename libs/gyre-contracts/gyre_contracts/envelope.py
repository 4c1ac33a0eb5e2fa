"""CloudEvents 1.0 binary mode over NATS headers: how an event becomes a message and back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, TypeVar, overload

import msgspec

from gyre_contracts.base import Event, new_id

SPECVERSION = "1.0"
JSON = "application/json"
MSGPACK = "application/msgpack"

E = TypeVar("E", bound=Event)

_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


class EnvelopeError(ValueError):
    """A message that is not a valid Gyre event: bad headers, wrong type or undecodable body."""


def encode_body(event: Event, content_type: str = JSON) -> bytes:
    if content_type == MSGPACK:
        return _msgpack_encoder.encode(event)
    return _json_encoder.encode(event)


def cloudevent_headers(
    event: Event,
    *,
    source: str,
    event_id: str | None = None,
    traceparent: str | None = None,
    content_type: str = JSON,
    time: dt.datetime | None = None,
    deduplicate: bool = True,
) -> dict[str, str]:
    """Binary-mode CloudEvents headers; ``Nats-Msg-Id`` equals ``ce-id`` so JetStream de-duplicates
    (left out with ``deduplicate=False``: core NATS messages, requests and replies, which no stream keeps)."""
    ce_id = event_id or new_id()
    headers = {
        "ce-specversion": SPECVERSION,
        "ce-id": ce_id,
        "ce-source": source,
        "ce-type": event.event_type(),
        "ce-time": (time or dt.datetime.now(dt.UTC)).isoformat(),
        "ce-subject": event.cloudevent_subject(),
        "ce-tenant": event.tenant,
        "content-type": content_type,
    }
    if deduplicate:
        headers["Nats-Msg-Id"] = ce_id
    if traceparent:
        headers["ce-traceparent"] = traceparent
    return headers


@overload
def decode_event(data: bytes, event_type: type[E], headers: Mapping[str, str] | None = None) -> E: ...


@overload
def decode_event(data: bytes, event_type: Any, headers: Mapping[str, str] | None = None) -> Any: ...


def decode_event(data: bytes, event_type: Any, headers: Mapping[str, str] | None = None) -> Any:
    """Decode a body into ``event_type`` (a Struct class or a tagged union of them).

    Raises EnvelopeError with a readable message for anything that is not that event: malformed
    bytes, a missing field, or a value outside its field's limits (gyre_contracts.limits), the
    message naming the field (``... - at `$.document_id```).
    """
    headers = headers or {}
    content_type = headers.get("content-type", JSON)
    try:
        if content_type.startswith(MSGPACK):
            event: Event = msgspec.msgpack.decode(data, type=event_type)
        else:
            event = msgspec.json.decode(data, type=event_type)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise EnvelopeError(f"undecodable payload: {exc}") from exc
    except RecursionError as exc:
        # msgspec decodes free JSON (metadata) recursively: a body nested thousands deep ends here.
        raise EnvelopeError("undecodable payload: JSON nested too deeply") from exc
    ce_type = headers.get("ce-type")
    if ce_type and ce_type != event.event_type():
        raise EnvelopeError(f"header ce-type {ce_type!r} does not match body type {event.event_type()!r}")
    return event
