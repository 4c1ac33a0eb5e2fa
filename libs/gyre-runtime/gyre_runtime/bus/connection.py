"""Connecting to NATS and declaring the streams, consumers and buckets of the topology table."""

from __future__ import annotations

from dataclasses import dataclass

import nats
import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js import api as js_api
from nats.js.errors import BadRequestError, NotFoundError
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from gyre_runtime.bus.topology import BUCKETS, OBJECT_STORES, STREAMS, ConsumerSpec, StreamSpec, stream_max_age_s
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger

log = get_logger()


@dataclass
class Bus:
    """An open connection: core NATS, JetStream, the settings it was opened with."""

    nc: NATS
    js: JetStreamContext
    settings: Settings

    def subject(self, suffix: str) -> str:
        return self.settings.subject(suffix)

    def stream_name(self, spec_name: str) -> str:
        return spec_name.replace("GYRE", self.settings.subject_prefix.upper(), 1)

    async def kv(self, bucket: str) -> KeyValue:
        return await self.js.key_value(self.bucket_name(bucket))

    async def object_store(self, bucket: str) -> ObjectStore:
        return await self.js.object_store(self.bucket_name(bucket))

    def bucket_name(self, bucket: str) -> str:
        return bucket.replace("gyre", self.settings.subject_prefix, 1)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()


async def connect(settings: Settings, *, name: str, patient: bool = True) -> Bus:
    """Connect to NATS. Services are ``patient`` (retry for ever, also through outages); command-line
    tools are not: they fail after a few seconds with an error naming the servers."""
    servers = [s.strip() for s in settings.nats_url.split(",") if s.strip()]

    async def on_error(exc: Exception) -> None:
        log.warning("nats_error", error=str(exc))

    try:
        nc = await nats.connect(
            servers=servers,
            name=name,
            error_cb=on_error,
            max_reconnect_attempts=-1 if patient else 2,
            reconnect_time_wait=0.5,
            connect_timeout=5 if patient else 2,
        )
    except nats.errors.NoServersError as exc:
        raise ConnectionError(f"cannot reach NATS at {settings.nats_url} (GYRE_NATS_URL)") from exc
    return Bus(nc=nc, js=nc.jetstream(), settings=settings)


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
    """Create or update the durable consumer; returns the stream name it lives on."""
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
    return stream


async def ensure_streams(bus: Bus) -> None:
    for spec in STREAMS:
        await ensure_stream(bus, spec)


async def ensure_buckets(bus: Bus) -> None:
    for spec in BUCKETS:
        name = bus.bucket_name(spec.name)
        try:
            await bus.js.key_value(name)
        except NotFoundError:
            await bus.js.create_key_value(
                js_api.KeyValueConfig(
                    bucket=name,
                    history=spec.history,
                    description=spec.description,
                    replicas=bus.settings.stream_replicas,
                )
            )
            log.info("bucket_created", bucket=name)


async def ensure_object_stores(bus: Bus) -> None:
    for spec in OBJECT_STORES:
        name = bus.bucket_name(spec.name)
        try:
            await bus.js.object_store(name)
        except NotFoundError:
            try:
                await bus.js.create_object_store(
                    name,
                    js_api.ObjectStoreConfig(
                        bucket=name, description=spec.description, replicas=bus.settings.stream_replicas,
                        storage=js_api.StorageType.FILE,
                    ),
                )
            except BadRequestError:  # another replica created it first
                continue
            log.info("object_store_created", bucket=name)


async def ensure_topology(bus: Bus) -> None:
    """Idempotent: safe for every replica of every service to call at start."""
    await ensure_streams(bus)
    await ensure_buckets(bus)
    await ensure_object_stores(bus)
