"""Connecting to NATS (credentials, TLS, own inbox) and declaring or verifying the topology table."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gyre_runtime.bus.credentials import CredentialError, default_credentials_dir, read_credential
from gyre_runtime.bus.permissions import ADMIN, Naming, inbox_prefix, topology_names_of
from gyre_runtime.bus.topology import (
    BUCKETS,
    CONSUMERS,
    OBJECT_STORES,
    STREAMS,
    ConsumerSpec,
    StreamSpec,
    stream_max_age_s,
)
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger

log = get_logger()


@dataclass
class Bus:
    """An open connection: core NATS, JetStream, the settings it was opened with."""

    nc: NATS
    js: JetStreamContext
    settings: Settings
    user: str = ""  # the NATS user it connected as ("" without credentials)
    inbox_prefix: str = "_INBOX"  # where its replies arrive (its own under credentials)
    # Handles by bucket name, opened once: opening asks JetStream for the stream's info (a round trip).
    _kv_handles: dict[str, KeyValue] = field(default_factory=dict, init=False, repr=False, compare=False)
    _object_stores: dict[str, ObjectStore] = field(default_factory=dict, init=False, repr=False, compare=False)

    def subject(self, suffix: str) -> str:
        return self.settings.subject(suffix)

    def stream_name(self, spec_name: str) -> str:
        return spec_name.replace("GYRE", self.settings.subject_prefix.upper(), 1)

    async def kv(self, bucket: str) -> KeyValue:
        name = self.bucket_name(bucket)
        if name not in self._kv_handles:
            self._kv_handles[name] = await self.js.key_value(name)
        return self._kv_handles[name]

    async def object_store(self, bucket: str) -> ObjectStore:
        name = self.bucket_name(bucket)
        if name not in self._object_stores:
            self._object_stores[name] = await self.js.object_store(name)
        return self._object_stores[name]

    def bucket_name(self, bucket: str) -> str:
        return bucket.replace("gyre", self.settings.subject_prefix, 1)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()


def without_credentials(url: str) -> str:
    """``nats://user:secret@host:4222`` -> ``nats://host:4222``: what messages and logs may show."""
    parts = urlsplit(url)
    if not parts.username and not parts.password:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def server_urls(settings: Settings) -> list[str]:
    return [s.strip() for s in settings.nats_url.split(",") if s.strip()]


def _url_user(servers: list[str]) -> str:
    for url in servers:
        user = urlsplit(url).username
        if user:
            return user
    return ""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS when a CA is configured: the server's certificate must chain to it and name its host."""
    if not settings.nats_tls_ca:
        if settings.nats_tls_cert or settings.nats_tls_key:
            raise ConnectionError("GYRE_NATS_TLS_CERT/KEY need GYRE_NATS_TLS_CA (the CA of the NATS servers)")
        return None
    context = ssl.create_default_context(cafile=settings.nats_tls_ca)
    if settings.nats_tls_cert:
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key or None)
    return context


def connect_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``nats.connect`` for these settings: servers, credential, inbox, TLS.

    The credential: GYRE_NATS_CREDENTIALS_FILE, else the user in GYRE_NATS_URL, else the operator's
    file in the data dir (so the `gyre` CLI on the machine that ran `gyre up` just works), else none.
    """
    servers = server_urls(settings)
    options: dict[str, Any] = {"servers": servers}
    user = _url_user(servers)
    credential_file = settings.nats_credentials_file
    if not credential_file and not user:
        operator = default_credentials_dir(settings.data_path) / f"{ADMIN}.json"
        credential_file = str(operator) if operator.exists() else ""
    if credential_file:
        try:
            credential = read_credential(Path(credential_file).expanduser())
        except CredentialError as exc:
            raise ConnectionError(str(exc)) from exc
        user = credential.user
        # nats-py prefers credentials in the URL: the file's must be the only ones.
        options["servers"] = [without_credentials(url) for url in servers]
        options["user"], options["password"] = credential.user, credential.password
    elif user:
        # As options, not only in the URLs: a cluster announces its other nodes without them, and a
        # reconnect to such a node would present no credential (Authorization Violation).
        parts = next(urlsplit(url) for url in servers if urlsplit(url).username)
        options["servers"] = [without_credentials(url) for url in servers]
        options["user"], options["password"] = unquote(parts.username or ""), unquote(parts.password or "")
    prefix = settings.nats_inbox_prefix or (inbox_prefix(user) if user else "")
    if prefix:
        options["inbox_prefix"] = prefix
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
    return options


async def connect(settings: Settings, *, name: str, patient: bool = True) -> Bus:
    """Connect to NATS. Services are ``patient`` (retry for ever, also through outages); command-line
    tools are not: they fail after a few seconds with an error naming the servers."""
    options = connect_options(settings)
    shown = ",".join(without_credentials(url) for url in options["servers"])

    refused = False
    tls_failed: asyncio.Future[ssl.SSLError] = asyncio.get_running_loop().create_future()

    async def on_error(exc: Exception) -> None:
        # A permissions violation names the refused subject: the first thing to read when a service
        # started with its own credential misses a right (see docs/security.md).
        nonlocal refused
        refused = refused or "authorization violation" in str(exc).lower()
        if isinstance(exc, ssl.SSLError) and not tls_failed.done():
            tls_failed.set_result(exc)
        log.warning("nats_error", error=str(exc))

    def credential_refused() -> ConnectionError:
        return ConnectionError(
            f"NATS at {shown} refused the credential of {options.get('user') or 'an anonymous client'}"
            " (GYRE_NATS_CREDENTIALS_FILE, or user:password in GYRE_NATS_URL)"
        )

    connecting = asyncio.ensure_future(
        nats.connect(
            name=name,
            error_cb=on_error,
            max_reconnect_attempts=-1 if patient else 2,
            reconnect_time_wait=0.5,
            connect_timeout=5 if patient else 2,
            **options,
        )
    )
    # nats-py keeps retrying a TLS handshake that failed verification, and never returns: a
    # certificate the CA does not vouch for will not change by waiting, so give up at once.
    await asyncio.wait((connecting, tls_failed), return_when=asyncio.FIRST_COMPLETED)
    if tls_failed.done() and not connecting.done():
        connecting.cancel()
        with contextlib.suppress(BaseException):
            await connecting
        raise ConnectionError(
            f"TLS with NATS at {shown} failed: {tls_failed.result()} (GYRE_NATS_TLS_CA must be the CA that"
            " signed the servers' certificates)"
        )
    tls_failed.cancel()
    try:
        nc = connecting.result()
    except nats.errors.NoServersError as exc:
        if refused:
            raise credential_refused() from exc
        raise ConnectionError(f"cannot reach NATS at {shown} (GYRE_NATS_URL)") from exc
    except nats.errors.Error as exc:
        if "authorization violation" in str(exc).lower():
            raise credential_refused() from exc
        raise
    return Bus(
        nc=nc, js=nc.jetstream(), settings=settings, user=options.get("user") or _url_user(options["servers"]),
        inbox_prefix=options.get("inbox_prefix", "_INBOX"),
    )


async def ensure_stream(bus: Bus, spec: StreamSpec) -> None:
    config = js_api.StreamConfig(
        name=bus.stream_name(spec.name),
        subjects=[bus.subject(s) for s in spec.subjects],
        storage=js_api.StorageType.FILE,
        retention=js_api.RetentionPolicy.LIMITS,
        max_age=stream_max_age_s(spec, bus.settings),
        duplicate_window=spec.duplicate_window_s,
        num_replicas=bus.settings.stream_replicas,
    )
    name = bus.stream_name(spec.name)
    try:
        await bus.js.stream_info(name)
    except NotFoundError:
        try:
            await bus.js.add_stream(config)
            log.info("stream_created", stream=name)
            return
        except BadRequestError:  # another replica created it first
            pass
    await bus.js.update_stream(config)


async def ensure_consumer(bus: Bus, spec: ConsumerSpec, max_deliver: int) -> str:
    """Create or update the durable consumer (or, with GYRE_DECLARE_TOPOLOGY=false, wait until the
    operator's topology step has); returns the stream name it lives on."""
    stream = bus.stream_name(spec.stream)
    if not bus.settings.declare_topology:
        probe = functools.partial(bus.js.consumer_info, stream, spec.durable)
        await _wait_until_declared(f"consumer {spec.durable} on {stream}", probe)
        return stream
    await declare_consumer(bus, spec, max_deliver)
    return stream


async def declare_consumer(bus: Bus, spec: ConsumerSpec, max_deliver: int) -> None:
    stream = bus.stream_name(spec.stream)
    subjects = [bus.subject(s) for s in spec.filter_subjects]
    config = js_api.ConsumerConfig(
        durable_name=spec.durable,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_wait=spec.ack_wait_s,
        # One more than the handler's limit: the handler dead-letters on its last delivery itself.
        max_deliver=max_deliver + 1,
        max_ack_pending=spec.max_ack_pending,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )
    await bus.js.add_consumer(stream, config)


async def ensure_streams(bus: Bus) -> None:
    for spec in STREAMS:
        await ensure_stream(bus, spec)


async def _ensure_store(
    kind: str, name: str, lookup: Callable[[str], Awaitable[object]], create: Callable[[], Awaitable[object]]
) -> None:
    """Create the KV bucket or object store ``name`` unless ``lookup`` finds it.

    Create is reached only when the lookup found nothing, so a refusal there means another replica
    created it in between: the store exists, which is all this asks.
    """
    try:
        await lookup(name)
    except NotFoundError:
        try:
            await create()
        except BadRequestError:
            return
        log.info(f"{kind}_created", bucket=name)


async def ensure_buckets(bus: Bus) -> None:
    for spec in BUCKETS:
        name = bus.bucket_name(spec.name)
        config = js_api.KeyValueConfig(
            bucket=name, history=spec.history, description=spec.description, replicas=bus.settings.stream_replicas
        )
        await _ensure_store("bucket", name, bus.js.key_value, functools.partial(bus.js.create_key_value, config))


async def ensure_object_stores(bus: Bus) -> None:
    for spec in OBJECT_STORES:
        name = bus.bucket_name(spec.name)
        config = js_api.ObjectStoreConfig(
            bucket=name, description=spec.description, replicas=bus.settings.stream_replicas,
            storage=js_api.StorageType.FILE,
        )
        create = functools.partial(bus.js.create_object_store, name, config)
        await _ensure_store("object_store", name, bus.js.object_store, create)


async def ensure_topology(bus: Bus) -> None:
    """At a process's start. Declaring (the default, and the admin's way): streams and buckets are
    created or updated, idempotently, so every replica may call it. With GYRE_DECLARE_TOPOLOGY=false
    (services with their own credentials, which may not create streams): wait until what this
    process reads exists."""
    if bus.settings.declare_topology:
        await ensure_streams(bus)
        await ensure_buckets(bus)
        await ensure_object_stores(bus)
        return
    naming = Naming(bus.settings.subject_prefix)
    for name in topology_names_of(bus.user, naming):
        await _wait_until_declared(f"stream {name}", functools.partial(bus.js.stream_info, name))


async def declare_topology(bus: Bus) -> None:
    """Everything in the topology table, durable consumers included: the operator's step (`gyre bus
    declare`, `gyre up`) before services that only verify start."""
    await ensure_streams(bus)
    await ensure_buckets(bus)
    await ensure_object_stores(bus)
    for spec in CONSUMERS:
        await declare_consumer(bus, spec, bus.settings.max_deliver)


async def _wait_until_declared(what: str, probe: Callable[[], Awaitable[object]]) -> None:
    told = False
    while True:
        try:
            await probe()
            return
        except NotFoundError:
            if not told:
                log.warning(
                    "topology_missing", missing=what,
                    hint="declare the topology with the admin credential: `gyre bus declare`",
                )
                told = True
        await asyncio.sleep(1.0)
