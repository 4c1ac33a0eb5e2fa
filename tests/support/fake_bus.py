"""The bus as a gateway handler sees it (``service.bus.nc``, ``service.publisher``), without a server.

For unit tests of what the gateway does with a reply, a silence or a refusal. ``FakeNats`` answers
each request subject from ``replies`` (an event, raw bytes, or an exception to raise), serves every
subscription from one list of events, and records what was requested and published. Anything about
redelivery, ordering or real subjects belongs in an integration test against a real nats-server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import nats.errors

from gyre_contracts import GenerationCancelRequested, cloudevent_headers, decode_event, encode_body
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import load_settings


@dataclass(frozen=True)
class Sent:
    """One request or publish the code under test made."""

    subject: str
    payload: bytes
    headers: dict[str, str]
    timeout: float | None = None


class FakeSubscription:
    def __init__(self, messages: list[Any]) -> None:
        self.messages = messages
        self.unsubscribed = False

    async def next_msg(self, timeout: float) -> Any:  # noqa: ASYNC109 (nats-py's signature)
        if not self.messages:
            raise nats.errors.TimeoutError
        return SimpleNamespace(data=encode_body(self.messages.pop(0)), headers=None)

    async def unsubscribe(self) -> None:
        self.unsubscribed = True


class FakeNats:
    is_connected = True

    def __init__(self, replies: Mapping[str, Any] | None = None, stream: list[Any] | None = None) -> None:
        self.replies = dict(replies or {})
        self.sub = FakeSubscription(stream or [])
        self.subscribed: list[str] = []
        self.requests: list[Sent] = []
        self.published: list[Sent] = []

    async def request(
        self,
        subject: str,
        payload: bytes,
        timeout: float = 0.5,  # noqa: ASYNC109 (nats-py's signature)
        headers: dict[str, str] | None = None,
        **_: Any,
    ) -> Any:
        self.requests.append(Sent(subject, payload, dict(headers or {}), timeout))
        reply = self.replies.get(subject, nats.errors.NoRespondersError())
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, bytes):
            return SimpleNamespace(data=reply, headers=None)
        return SimpleNamespace(data=encode_body(reply), headers=cloudevent_headers(reply, source="gyre/fake"))

    async def subscribe(self, subject: str) -> FakeSubscription:
        self.subscribed.append(subject)
        return self.sub

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.published.append(Sent(subject, payload, dict(headers or {})))

    def cancels(self) -> list[GenerationCancelRequested]:
        cancels = [p for p in self.published if ".generate.cancel." in p.subject]
        return [decode_event(p.payload, GenerationCancelRequested) for p in cancels]


@dataclass
class FakePublisher:
    """The service's event publisher: records events, or raises ``fails_with`` as an unacknowledged publish."""

    events: list[Any] = field(default_factory=list)
    fails_with: BaseException | None = None
    bus: Any = None  # the fake bus core messages go out on (set by fake_service)

    async def publish(self, event: Any, **_: Any) -> None:
        if self.fails_with is not None:
            raise self.fails_with
        self.events.append(event)

    async def emit(self, event: Any, *, subject: str, traceparent: str | None = None) -> None:
        """Core NATS messages go out as the real Publisher sends them, onto the fake connection."""
        await Publisher(self.bus, "gateway").emit(event, subject=subject, traceparent=traceparent)


def fake_service(nc: FakeNats | None = None, *, ready: bool = True, publisher: FakePublisher | None = None,
                 **settings: Any) -> Any:
    """What gateway code reads of its Service: ready, settings, bus (nc, subject) and publisher."""
    values = load_settings({}, **settings)
    bus = SimpleNamespace(nc=nc or FakeNats(), settings=values, subject=values.subject)
    publisher = publisher or FakePublisher()
    publisher.bus = bus
    return SimpleNamespace(ready=ready, bus=bus, settings=values, startup_error=None, publisher=publisher)
