"""The bus of one service as FastStream subscribers and publishers, declared from Gyre's two tables.

What a service does on the bus is written once: its durable consumers in the topology table
(:mod:`gyre_runtime.bus.topology`), the events it publishes, the requests it serves and the core
subjects it listens to in the permission table (:mod:`gyre_runtime.bus.permissions`). :func:`declare`
turns both into subscribers and publishers of a FastStream ``NatsBroker``; a running service declares
them with its handlers attached, and ``tools/gen_proto.py`` declares the same ones with nothing
attached to generate ``proto/asyncapi.yaml`` (FastStream's AsyncAPI), so the document is what runs.
"""

# No `from __future__ import annotations`: FastStream reads the handlers' annotations as objects.

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from faststream.nats.publisher.usecase import LogicPublisher
from nats.aio.client import Client
from nats.aio.msg import Msg

from gyre_contracts import Event, TokenDelta
from gyre_contracts.catalog import ALL_EVENTS
from gyre_contracts.monitor import DeadLetter
from gyre_contracts.schema import subject_parameter
from gyre_runtime.bus.connection import Bus, connect, server_urls, without_credentials
from gyre_runtime.bus.consumer import ConsumerWorker
from gyre_runtime.bus.permissions import SERVICE_ACCESS, Naming
from gyre_runtime.bus.publisher import subject_matches
from gyre_runtime.bus.topology import ConsumerSpec, consumers_of
from gyre_runtime.bus.wire import Undecodable, wire
from gyre_runtime.config import Settings

# Answers a request (or handles a core message) from the raw message: it replies itself.
RawHandler = Callable[[Msg], Awaitable[None]]

# Core subjects a service reads per request, each on a subscription of its own made with nats-py
# (a token stream, `generate.stream.<request_id>`): declared for the document, never subscribed here.
PER_REQUEST = frozenset({f"{TokenDelta.subject}.*"})

# How many requests one responder handles at once (retrievals batch in embed's scheduler).
RESPONDER_CONCURRENCY = 256
# How long a pull subscriber's fetch waits for a message before asking again.
FETCH_WAIT_S = 1.0


def events_on(pattern: str) -> tuple[type[Event], ...]:
    """The event types carried on subjects matching a pattern of the permission table (suffixes)."""
    def travels_on(cls: type[Event]) -> bool:
        if not subject_parameter(cls):
            return subject_matches(pattern, cls.subject)
        # The last token is a value (a tenant, a request id): any one token, or the pattern's own.
        head, _, last = pattern.rpartition(".")
        return subject_matches(pattern, f"{cls.subject}.x") or (head == cls.subject and "*" not in last)

    found = tuple(cls for cls in ALL_EVENTS if travels_on(cls))
    if not found:
        raise LookupError(f"no event type travels on {pattern!r}")
    return found


def dead_letter_subject(service: str) -> str:
    return f"{DeadLetter.subject}.{service}"


@dataclass
class Attached:
    """The handlers a running service attached; what is missing is declared but not subscribed."""

    consumers: Mapping[str, ConsumerWorker] = field(default_factory=dict)
    responders: Mapping[str, RawHandler] = field(default_factory=dict)
    listeners: Mapping[str, RawHandler] = field(default_factory=dict)


@dataclass
class Declared:
    """What :func:`declare` put on the broker, by Gyre's names (subject suffixes, durables)."""

    consumers: dict[str, Any] = field(default_factory=dict)  # durable -> FastStream subscriber
    responders: dict[str, Any] = field(default_factory=dict)  # subject suffix -> subscriber
    listeners: dict[str, Any] = field(default_factory=dict)  # subject suffix -> subscriber
    publishers: dict[str, LogicPublisher] = field(default_factory=dict)  # subject suffix -> publisher


async def _not_attached(*args: Any) -> None:
    raise RuntimeError("a declared-only subscriber received a message")


def _consumer_subscriber(
    broker: NatsBroker, service: str, spec: ConsumerSpec, naming: Naming, worker: ConsumerWorker | None,
    inbox_prefix: str,
) -> Any:
    if len(spec.filter_subjects) != 1:
        raise ValueError(f"consumer {spec.durable}: one filter subject per consumer, not {spec.filter_subjects}")

    async def on_message(event: Any, message: Any) -> None:
        if worker is None:
            await _not_attached()
            return
        await worker.receive(event, message.raw_message)

    on_message.__annotations__ = {"event": wire(spec.events), "message": NatsMessage, "return": None}
    on_message.__name__ = f"{service}_{spec.durable}"

    def decoder(message: Any) -> Event | Undecodable:
        if worker is None:
            return Undecodable("not attached")
        return worker.decode(message.raw_message)

    subscriber = broker.subscriber(
        naming.subject(spec.filter_subjects[0]),
        stream=JStream(naming.stream(spec.stream), declare=False),
        durable=spec.durable,
        # One message per fetch: the worker asks for the next only when a handler slot is free.
        pull_sub=PullSub(batch_size=1, timeout=FETCH_WAIT_S),
        # Fetches are answered on the connection's own inbox: under credentials only it may subscribe there.
        inbox_prefix=f"{inbox_prefix}.".encode(),
        ack_policy=AckPolicy.MANUAL,  # the worker acks, naks (with back-off) or dead-letters
        decoder=decoder,
        title=f"{service}:{spec.durable}",
        description=(
            f"Durable pull consumer `{spec.durable}` of {service} on stream {naming.stream(spec.stream)}: "
            f"up to {spec.concurrency} at once per replica, ack wait {spec.ack_wait_s:g} s, "
            f"back-off {', '.join(f'{b:g}' for b in spec.backoff_s)} s; undecodable or failing on its "
            "last delivery -> dead-letter stream."
        ),
    )
    subscriber(on_message)
    if worker is not None:
        worker.subscriber = subscriber
    return subscriber


def _core_subscriber(
    broker: NatsBroker, service: str, subject: str, naming: Naming, handler: RawHandler | None, *, queue: str
) -> Any:
    if queue:
        description = f"{service} answers requests on {naming.subject(subject)} (queue group `{queue}`)."
    elif subject in PER_REQUEST:
        description = (
            f"{service} reads {naming.subject(subject)} one request at a time, on a subscription of its own "
            "made with nats-py (the token hot path)."
        )
    else:
        description = f"Every {service} replica hears {naming.subject(subject)} (core NATS, no stream)."

    async def on_message(event: Any, message: Any) -> None:
        if handler is None:
            await _not_attached()
            return
        await handler(message.raw_message)

    on_message.__annotations__ = {"event": wire(events_on(subject)), "message": NatsMessage, "return": None}
    on_message.__name__ = f"{service}_{subject.replace('.', '_').replace('*', 'any').replace('>', 'all')}"
    subscriber = broker.subscriber(
        naming.subject(subject),
        queue=queue,
        max_workers=RESPONDER_CONCURRENCY,
        no_reply=True,  # replies carry Gyre's own envelope, sent by the handler
        decoder=lambda message: message.body,
        title=f"{service}:{subject}",
        description=description,
    )
    subscriber(on_message)
    return subscriber


def declare(
    broker: NatsBroker, service: str, naming: Naming, attached: Attached | None = None, *, inbox_prefix: str = "_INBOX"
) -> Declared:
    """Declare ``service``'s subscribers and publishers on ``broker``.

    With ``attached`` (a running service) only the endpoints that have a handler are subscribed;
    without it (the AsyncAPI document) everything the tables say is declared.
    """
    declared = Declared()
    access = SERVICE_ACCESS[service]
    for spec in consumers_of(service):
        worker = attached.consumers.get(spec.durable) if attached else None
        if attached is None or worker is not None:
            declared.consumers[spec.durable] = _consumer_subscriber(
                broker, service, spec, naming, worker, inbox_prefix
            )
    for subject in access.serves:
        responder = attached.responders.get(subject) if attached else None
        if attached is None or responder is not None:
            declared.responders[subject] = _core_subscriber(broker, service, subject, naming, responder, queue=service)
    for subject in access.subscribes:
        listener = attached.listeners.get(subject) if attached else None
        if attached is None or listener is not None:
            declared.listeners[subject] = _core_subscriber(broker, service, subject, naming, listener, queue="")
    publishes = list(access.publishes)
    if consumers_of(service):
        publishes.append(dead_letter_subject(service))
    for subject in publishes:
        types = events_on(subject)
        declared.publishers[subject] = broker.publisher(
            naming.subject(subject), schema=wire(types), title=f"{service}:publishes:{subject}",
            description=f"{service} publishes {', '.join(t.__name__ for t in types)}",
        )
    return declared


class GyreBroker(NatsBroker):
    """A ``NatsBroker`` on Gyre's connection: its credential, TLS checks and inbox prefix, patient retries."""

    def __init__(self, settings: Settings, *, name: str) -> None:
        super().__init__(
            servers=[without_credentials(url) for url in server_urls(settings)],
            logger=logging.getLogger("gyre.faststream"),
            log_level=logging.DEBUG,  # a line per message is the metrics' job, not the log's
        )
        self.settings = settings
        self.client_name = name
        self.bus: Bus | None = None

    async def _connect(self) -> Client:
        self.bus = await connect(self.settings, name=self.client_name)
        self.config.connect(self.bus.nc)
        return self.bus.nc
