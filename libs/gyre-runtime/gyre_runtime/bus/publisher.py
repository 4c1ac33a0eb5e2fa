"""Publishing events: CloudEvents headers, JetStream de-duplication by ce-id, batched async acks.

A service's publishers are declared on its FastStream broker (:mod:`gyre_runtime.bus.broker`), which
is what the AsyncAPI document lists; :class:`Publisher` refuses a subject outside them, so the
document cannot fall behind what runs. The messages themselves go out through nats-py on the
broker's connection: FastStream's ``publish`` adds headers of its own (content type, correlation id)
to Gyre's CloudEvents ones.
"""

from __future__ import annotations

import re

from nats.aio.msg import Msg
from nats.js import api as js_api

from gyre_contracts import Event, cloudevent_headers, encode_body
from gyre_contracts.schema import event_subject
from gyre_runtime.bus.connection import Bus


class UndeclaredPublish(RuntimeError):
    """A service published on a subject it does not declare: the permission table needs a line."""


def _pattern_regex(pattern: str) -> str:
    tokens = pattern.split(".")
    parts = ["[^.]+" if t == "*" else ".+" if t == ">" and i == len(tokens) - 1 else re.escape(t)
             for i, t in enumerate(tokens)]
    return r"\.".join(parts)


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching: ``*`` is one token, a final ``>`` one or more."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, token in enumerate(wanted):
        if token == ">":
            return len(tokens) > index
        if index >= len(tokens) or token not in ("*", tokens[index]):
            return False
    return len(tokens) == len(wanted)


class Publisher:
    """Publishes events for one service (``ce-source`` = ``gyre/<service>``)."""

    def __init__(self, bus: Bus, service: str, declared: tuple[str, ...] | None = None) -> None:
        self.bus = bus
        self.service = service
        self.source = f"{bus.settings.subject_prefix}/{service}"
        self.declared = declared

    @property
    def declared(self) -> tuple[str, ...] | None:
        """The subject patterns (suffixes) this service declared it publishes on; None: not checked."""
        return self._declared

    @declared.setter
    def declared(self, patterns: tuple[str, ...] | None) -> None:
        self._declared = patterns
        # One compiled expression: the check runs on every publish, every streamed token included.
        self._allowed = None if patterns is None else re.compile("|".join(map(_pattern_regex, patterns)))

    def _message(
        self, event: Event, event_id: str | None, subject: str | None, traceparent: str | None,
        *, deduplicate: bool = True,
    ) -> tuple[str, bytes, dict[str, str]]:
        suffix = subject or event_subject(event)
        if self._allowed is not None and not self._allowed.fullmatch(suffix):
            raise UndeclaredPublish(
                f"{self.service} publishes on {suffix!r}, which is not among its declared publishers"
                f" {list(self._declared or ())} (bus/permissions.py SERVICE_ACCESS)"
            )
        headers = cloudevent_headers(
            event, source=self.source, event_id=event_id, traceparent=traceparent, deduplicate=deduplicate
        )
        return self.bus.subject(suffix), encode_body(event), headers

    async def publish(
        self,
        event: Event,
        *,
        event_id: str | None = None,
        subject: str | None = None,
        traceparent: str | None = None,
    ) -> js_api.PubAck:
        """Publish to JetStream and wait for its ack. A repeated ``event_id`` is dropped (ack.duplicate)."""
        subj, body, headers = self._message(event, event_id, subject, traceparent)
        return await self.bus.js.publish(subj, body, headers=headers)

    async def reply(self, request: Msg, event: Event) -> None:
        """Answer a request/reply call with the reply's own CloudEvents headers.

        (``Msg.respond`` would echo the request's headers, ce-type included.)
        """
        if not request.reply:
            return
        headers = cloudevent_headers(event, source=self.source, deduplicate=False)
        await self.bus.nc.publish(request.reply, encode_body(event), headers=headers)

    async def emit(self, event: Event, *, subject: str, traceparent: str | None = None) -> None:
        """Core NATS publish (no persistence): token streams and other ephemeral messages."""
        subj, body, headers = self._message(event, None, subject, traceparent, deduplicate=False)
        await self.bus.nc.publish(subj, body, headers=headers)
