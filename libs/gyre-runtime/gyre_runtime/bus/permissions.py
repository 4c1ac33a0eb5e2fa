"""Who may do what on the bus: one permission table per identity, rendered into nats-server's ``authorization``.

Every process connects as its own identity (``gateway``, ``ingest``, ... ``admin``, ``publisher-<tenant>``).
What a service does on the bus is written once below (``SERVICE_ACCESS``) in Gyre's terms (events it
publishes, request/reply subjects it serves or asks, buckets it reads or writes); its durable consumers
come from the topology table. ``permissions_for`` turns that into NATS subjects, including the JetStream
API subjects each action needs, and everything not listed is refused by the server.
"""

from __future__ import annotations

from dataclasses import dataclass

from gyre_contracts import (
    Alert,
    ChunksReady,
    DeadLetter,
    DocumentAccepted,
    DocumentDeleted,
    DocumentDeletionRequested,
    DocumentIndexed,
    DocumentRejected,
    DocumentSubmitted,
    EmbedRequest,
    EvaluationCompleted,
    EvaluationProgress,
    EvaluationRequested,
    FeedbackRecorded,
    FeedbackRejected,
    FeedbackSubmitted,
    GenerationCancelRequested,
    GenerationCompleted,
    GenerationFailed,
    GenerationLoadRequest,
    GenerationRequested,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    RetrieveRequest,
    TokenDelta,
)
from gyre_contracts.limits import TENANT_ID_RULE, is_tenant_id
from gyre_runtime.bus.topology import STREAMS, ConsumerSpec, consumers_of

ADMIN = "admin"
PUBLISHER_PREFIX = "publisher-"
SERVICES = ("gateway", "ingest", "embed", "generate", "feedback", "improve", "evaluate", "monitor")



class IdentityError(ValueError):
    """A tenant or identity that cannot be given a credential (the message says why)."""


@dataclass(frozen=True)
class ServiceAccess:
    """What one service does on the bus, in Gyre's terms (subjects are suffixes after the prefix)."""

    service: str
    publishes: tuple[str, ...] = ()  # events it publishes (JetStream or core)
    subscribes: tuple[str, ...] = ()  # core subscriptions (no stream behind them)
    serves: tuple[str, ...] = ()  # request/reply subjects it answers (queue group)
    asks: tuple[str, ...] = ()  # request/reply subjects it calls
    reads: tuple[str, ...] = ()  # KV buckets it reads
    writes: tuple[str, ...] = ()  # KV buckets it writes (and reads)
    # KV buckets it reads whole but writes only under one key pattern: (bucket, pattern), e.g. the
    # served-model entries of gyre_models, not the hub's versions and aliases there (the operator's).
    writes_keys: tuple[tuple[str, str], ...] = ()
    reads_objects: tuple[str, ...] = ()  # object stores it reads
    writes_objects: tuple[str, ...] = ()  # object stores it writes (and reads)
    replays: tuple[str, ...] = ()  # streams it reads through short-lived consumers of its own
    inspects: tuple[str, ...] = ()  # streams whose state (not messages) it reads: sequences, counts
    deletes_from: tuple[str, ...] = ()  # streams it deletes single messages from (a deleted document's content)


# The one table of what each service may do. A change in what a service does on the bus (a new event,
# a bucket it starts to write) is a line here; the e2e stack runs with these permissions, and the
# server's log names every refused subject ("Publish Violation", "Subscription Violation").
SERVICE_ACCESS: dict[str, ServiceAccess] = {
    access.service: access
    for access in (
        ServiceAccess(
            "gateway",
            publishes=(
                f"{DocumentSubmitted.subject}.*",  # every tenant's: the gateway decides the tenant from the API key
                DocumentDeletionRequested.subject,
                GenerationRequested.subject,
                f"{GenerationCancelRequested.subject}.*",
                FeedbackSubmitted.subject,
                EvaluationRequested.subject,
            ),
            subscribes=(f"{TokenDelta.subject}.*",),
            asks=(RetrieveRequest.subject, EmbedRequest.subject, GenerationLoadRequest.subject),
            reads=("gyre_api_keys", "gyre_generations", "gyre_models", "gyre_prompts"),
            writes=("gyre_documents", "gyre_evaluations"),
            reads_objects=("gyre_evaluations",),
            writes_objects=("gyre_golden_sets",),
            inspects=("GYRE_INGEST",),  # a deletion's watermark: submissions sent before it
        ),
        ServiceAccess(
            "ingest",
            publishes=(DocumentAccepted.subject, DocumentRejected.subject, ChunksReady.subject),
            reads=("gyre_tenants",),
            writes=("gyre_documents", "gyre_dedup"),
            deletes_from=("GYRE_INGEST", "GYRE_EMBED"),  # a deleted document's submissions and chunks
        ),
        ServiceAccess(
            "embed",
            publishes=(
                DocumentIndexed.subject,
                DocumentDeleted.subject,
                ReindexProgress.subject,
                ReindexCompleted.subject,
                ReindexFailed.subject,
            ),
            serves=(RetrieveRequest.subject, EmbedRequest.subject),
            reads=("gyre_models",),  # the model hub: its alias, the version it names
            writes=("gyre_documents", "gyre_index"),
            writes_keys=(("gyre_models", "served.>"),),  # registers the model it serves
            reads_objects=("gyre_model_artifacts",),  # the model version's files, from the hub
            replays=("GYRE_EMBED",),  # a reindex reads every stored ChunksReady again
        ),
        ServiceAccess(
            "generate",
            publishes=(f"{TokenDelta.subject}.*", GenerationCompleted.subject, GenerationFailed.subject),
            subscribes=(f"{GenerationCancelRequested.subject}.*",),
            serves=(GenerationLoadRequest.subject,),
            asks=(RetrieveRequest.subject,),
            reads=("gyre_tenants", "gyre_models"),  # gyre_models: follows its alias in the model hub
            writes=("gyre_generations", "gyre_prompts"),  # seeds the default prompt
            writes_keys=(("gyre_models", "served.>"),),  # registers the model it serves
            reads_objects=("gyre_model_artifacts",),  # the model version's files, from the hub
        ),
        ServiceAccess(
            "feedback",
            publishes=(FeedbackRecorded.subject, FeedbackRejected.subject),
            reads=("gyre_generations", "gyre_tenants"),  # comments go through the tenant's personal-data policy
        ),
        ServiceAccess("improve", writes=("gyre_feedback_tallies",)),
        ServiceAccess(
            "evaluate",
            publishes=(GenerationRequested.subject, EvaluationProgress.subject, EvaluationCompleted.subject),
            subscribes=(f"{TokenDelta.subject}.*",),
            asks=(RetrieveRequest.subject, GenerationLoadRequest.subject),
            reads=("gyre_prompts",),
            writes=("gyre_evaluations",),
            reads_objects=("gyre_golden_sets",),
            writes_objects=("gyre_evaluations",),
        ),
        ServiceAccess(
            "monitor",
            publishes=(Alert.subject,),
            # Every persisted event, as its app subscribes (core subscriptions to the streams' subjects).
            subscribes=tuple(subject for spec in STREAMS for subject in spec.subjects),
        ),
    )
}


@dataclass(frozen=True)
class Permissions:
    """NATS subjects one identity may publish to and subscribe to; everything else is refused."""

    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    # Responders: may publish one reply to the reply subject of each request they received.
    allow_responses: bool = False


def inbox_prefix(identity: str) -> str:
    """Where an identity's replies arrive (``nats.connect(inbox_prefix=...)``); only it may subscribe there."""
    return f"_INBOX_{identity}"


@dataclass(frozen=True)
class Naming:
    """Subject, stream and bucket names under one subject prefix (``gyre`` by default)."""

    prefix: str = "gyre"

    def subject(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}"

    def stream(self, name: str) -> str:
        return name.replace("GYRE", self.prefix.upper(), 1)

    def bucket(self, name: str) -> str:
        return name.replace("gyre", self.prefix, 1)


def _read_stream(stream: str) -> list[str]:
    """Reading a stream's messages through consumers of one's own (KV watch and keys, object get, replay)."""
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}",
        f"$JS.API.CONSUMER.CREATE.{stream}.>",
        f"$JS.API.CONSUMER.INFO.{stream}.*",
        f"$JS.API.CONSUMER.DELETE.{stream}.*",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.*",
        f"$JSC.FC.{stream}.>",  # flow-control answers of ordered consumers
    ]


def _read_bucket_stream(stream: str) -> list[str]:
    """Reading a KV bucket or object store: single gets (direct or not) plus its consumers."""
    return [
        f"$JS.API.STREAM.MSG.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}",
        f"$JS.API.DIRECT.GET.{stream}.>",
        *_read_stream(stream),
    ]


def _consumer_rights(naming: Naming, spec: ConsumerSpec) -> list[str]:
    """Fetch from one's own durable consumer and acknowledge its messages.

    Not create it: the admin declares durable consumers (``declare_topology``). Whoever may create a
    consumer may also point it at any deliver subject and have the server publish stored messages there.
    """
    stream, durable = naming.stream(spec.stream), spec.durable
    return [
        f"$JS.API.STREAM.INFO.{stream}",
        f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
        f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


def service_permissions(service: str, naming: Naming | None = None) -> Permissions:
    """The least a service needs: its events, its consumers, its buckets, its request/reply subjects."""
    naming = naming or Naming()
    access = SERVICE_ACCESS[service]
    consumers = consumers_of(service)
    publish: list[str] = ["$JS.API.INFO", "$JS.API.STREAM.NAMES"]
    publish += [naming.subject(s) for s in (*access.publishes, *access.asks)]
    if consumers:
        publish.append(naming.subject(f"{DeadLetter.subject}.{service}"))
    for spec in consumers:
        publish += _consumer_rights(naming, spec)
    for stream in access.replays:
        publish += _read_stream(naming.stream(stream))
    publish += [f"$JS.API.STREAM.INFO.{naming.stream(s)}" for s in (*access.inspects, *access.deletes_from)]
    publish += [f"$JS.API.STREAM.MSG.DELETE.{naming.stream(s)}" for s in access.deletes_from]
    for bucket in (*access.reads, *access.writes):
        publish += _read_bucket_stream(f"KV_{naming.bucket(bucket)}")
    publish += [f"$KV.{naming.bucket(bucket)}.>" for bucket in access.writes]
    for bucket, pattern in access.writes_keys:
        publish += _read_bucket_stream(f"KV_{naming.bucket(bucket)}")
        publish.append(f"$KV.{naming.bucket(bucket)}.{pattern}")
    for store in (*access.reads_objects, *access.writes_objects):
        publish += _read_bucket_stream(f"OBJ_{naming.bucket(store)}")
    for store in access.writes_objects:
        name = naming.bucket(store)
        publish += [f"$O.{name}.>", f"$JS.API.STREAM.PURGE.OBJ_{name}"]  # a replaced object's old chunks
    subscribe = [f"{inbox_prefix(service)}.>"]
    subscribe += [naming.subject(s) for s in (*access.subscribes, *access.serves)]
    return Permissions(
        publish=tuple(dict.fromkeys(publish)),
        subscribe=tuple(dict.fromkeys(subscribe)),
        allow_responses=bool(access.serves),
    )


def admin_permissions() -> Permissions:
    """The operator (the `gyre` CLI, `gyre up`'s topology step): everything, as before credentials."""
    return Permissions(publish=(">",), subscribe=(">",))


def publisher_identity(tenant: str) -> str:
    check_tenant_token(tenant)
    return f"{PUBLISHER_PREFIX}{tenant}"


def check_tenant_token(tenant: str) -> None:
    # The tenant goes into subjects (``gyre.ingest.submitted.<tenant>``) and identity names: one plain
    # subject token (the contracts' TenantId), so no tenant can name a wildcard or another's subject.
    if not (tenant and is_tenant_id(tenant)):
        raise IdentityError(f"tenant {tenant!r} cannot be given a credential: use {TENANT_ID_RULE}")


def publisher_permissions(tenant: str, naming: Naming | None = None) -> Permissions:
    """An external system: DocumentSubmitted for one tenant, and the acknowledgements of its own publishes."""
    naming = naming or Naming()
    identity = publisher_identity(tenant)
    return Permissions(
        publish=(naming.subject(f"{DocumentSubmitted.subject}.{tenant}"),),
        subscribe=(f"{inbox_prefix(identity)}.>",),
    )


def permissions_for(identity: str, naming: Naming | None = None) -> Permissions:
    """``admin``, a service name, or ``publisher-<tenant>``."""
    if identity == ADMIN:
        return admin_permissions()
    if identity in SERVICE_ACCESS:
        return service_permissions(identity, naming)
    if identity.startswith(PUBLISHER_PREFIX):
        return publisher_permissions(identity.removeprefix(PUBLISHER_PREFIX), naming)
    raise IdentityError(
        f"unknown identity {identity!r}: expected {ADMIN}, one of {', '.join(SERVICES)}, or {PUBLISHER_PREFIX}<tenant>"
    )


def topology_names_of(identity: str, naming: Naming | None = None) -> tuple[str, ...]:
    """The streams (KV_ and OBJ_ included) an identity reads: what it checks exist before it starts."""
    naming = naming or Naming()
    if identity not in SERVICE_ACCESS:
        return ()
    access = SERVICE_ACCESS[identity]
    names = [naming.stream(spec.stream) for spec in consumers_of(identity)]
    names += [naming.stream(s) for s in access.replays]
    names += [f"KV_{naming.bucket(b)}" for b in (*access.reads, *access.writes, *(b for b, _ in access.writes_keys))]
    names += [f"OBJ_{naming.bucket(b)}" for b in (*access.reads_objects, *access.writes_objects)]
    return tuple(dict.fromkeys(names))


def _quoted(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def render_permissions(permissions: Permissions) -> str:
    """The ``permissions { ... }`` value of one user in nats-server's configuration syntax."""
    parts = [
        f"publish: {{ allow: {_quoted(permissions.publish)} }}",
        f"subscribe: {{ allow: {_quoted(permissions.subscribe)} }}",
    ]
    if permissions.allow_responses:
        parts.append("allow_responses: true")
    return "{ " + ", ".join(parts) + " }"
