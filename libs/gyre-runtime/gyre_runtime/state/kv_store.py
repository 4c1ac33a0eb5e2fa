"""How every store keeps state in a KV bucket: it names its bucket, the bus opens the bucket once, and
a key that several writers change is changed by compare-and-set.

Compare-and-set: read the key and its revision, compute the new value, write it on condition that the
key is still at that revision (``update(last=revision)``, ``create`` for a missing key); when another
writer got there first the write fails with "wrong last sequence", and the whole step is retried on
what that writer left. No lock, and no writer's change is lost.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Generic, Self, TypeVar, cast

import msgspec
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gyre_runtime.state.buckets import BucketSpec

if TYPE_CHECKING:
    from gyre_runtime.bus.connection import Bus

T = TypeVar("T")
R = TypeVar("R")

# Enough for dozens of writers racing on one key (a popular LSH band, a document resubmitted in bursts).
DEFAULT_ATTEMPTS = 50
# JetStream's codes for a failed expected-last-sequence check: nats-py turns them into
# KeyWrongLastSequenceError on create and update, but not on a conditional delete.
_WRONG_LAST_SEQUENCE = (10071, 10164)


class KvStore:
    """A store over one KV bucket: ``bucket`` is its entry in the bucket table, ``open`` gets it from a bus."""

    bucket: ClassVar[BucketSpec]

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, bus: Bus) -> Self:
        """The store on ``bus``. Cheap to call per request: the bus opens each bucket once and keeps the handle."""
        return cls(await bus.kv(cls.bucket.name))


class WriteConflict(RuntimeError):
    """Every compare-and-set attempt lost to another writer: ``what`` kept changing under us."""

    def __init__(self, what: str, attempts: int) -> None:
        super().__init__(
            f"{what} kept changing under us: all {attempts} compare-and-set attempts lost to other writers"
        )
        self.what = what
        self.attempts = attempts


class Conflict(Exception):
    """A conditional write found the key at another revision than the one read: read again and retry."""


@dataclass(frozen=True)
class Revisioned(Generic[T]):
    """A key's value and the revision a conditional write must name (0: the key holds nothing)."""

    value: T | None
    revision: int


async def read(kv: KeyValue, key: str, decode: Callable[[bytes], T]) -> Revisioned[T]:
    """The key's value and revision; a missing, deleted or purged key reads as (None, 0)."""
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:  # nats-py reports a deleted key as not found too
        return Revisioned(None, 0)
    return Revisioned(decode(entry.value) if entry.value else None, entry.revision or 0)


async def write(kv: KeyValue, key: str, data: bytes | None, revision: int) -> None:
    """Write ``data`` (None: delete the key) only if the key is still at ``revision``; Conflict if it moved.

    Revision 0 creates the key: it must hold nothing (``create`` also takes over a deleted key).
    """
    try:
        if data is None:
            if revision:
                await kv.delete(key, last=revision)
        elif revision:
            await kv.update(key, data, last=revision)
        else:
            await kv.create(key, data)
    except KeyWrongLastSequenceError as exc:
        raise Conflict(key) from exc
    except APIError as exc:
        if exc.err_code in _WRONG_LAST_SEQUENCE:
            raise Conflict(key) from exc
        raise


async def create(kv: KeyValue, key: str, data: bytes) -> bool:
    """Write ``data`` under a key that holds nothing yet; False when someone created it first."""
    try:
        await write(kv, key, data, 0)
    except Conflict:
        return False
    return True


async def retry_on_conflict(
    attempt: Callable[[], Awaitable[R]], *, what: str, attempts: int = DEFAULT_ATTEMPTS
) -> R:
    """Run ``attempt`` (a read, then a conditional write) until it ends without a Conflict.

    Between attempts a short random pause, growing with the attempts, so that writers that collided
    do not collide again in lockstep. WriteConflict after ``attempts`` conflicts.
    """
    for number in range(attempts):
        try:
            return await attempt()
        except Conflict:
            await asyncio.sleep(random.uniform(0, 0.002 * min(number, 10)))
    raise WriteConflict(what, attempts)


async def compare_and_set(
    kv: KeyValue,
    key: str,
    change: Callable[[T | None], T | Awaitable[T | None] | None],
    *,
    decode: Callable[[bytes], T],
    encode: Callable[[T], bytes | None] = msgspec.json.encode,
    what: str = "",
    attempts: int = DEFAULT_ATTEMPTS,
) -> T | None:
    """Change ``key`` atomically: ``change`` maps the current value (None: no key) to the new one.

    ``change`` returning None writes nothing; ``encode`` returning None deletes the key. ``change``
    (a function or a coroutine function) runs again on every retry, on what the other writer left, so
    whatever it decides must come from its argument. Returns the value the key holds as far as this
    call knows: the new one, or the current one when nothing was written.
    """

    async def attempt() -> T | None:
        current = await read(kv, key, decode)
        outcome = change(current.value)
        new = cast("T | None", await outcome if inspect.isawaitable(outcome) else outcome)
        if new is None:
            return current.value
        await write(kv, key, encode(new), current.revision)
        return new

    return await retry_on_conflict(attempt, what=what or f"KV key {key!r}", attempts=attempts)
