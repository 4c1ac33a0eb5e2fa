"""The current values of the keys matching a pattern, read whole even when the bus is busy.

nats-py's KV watch marks "the current values end here" with a ``None`` entry. It decides that
from the consumer's info right after creating it: no pending message and nothing delivered yet.
On a loaded machine the server may have pushed every current value before that info comes back,
while the client has not yet taken them in: pending is 0, delivered (client side) is 0, and the
marker comes first. A listing that stops at the marker then comes back empty. Seen: `/v1/models`
without the models generate had just registered, during a hot swap on a busy 2-core machine.

``current_values`` reads to the marker, then asks the consumer how many messages the server has
delivered and keeps reading until it has taken in that many (deletes included: they are delivered
too, and drop the key).
"""

from __future__ import annotations

import nats.errors
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

# How long to wait for a message the server says it delivered: generous, it is already on its way.
DELIVERED_WAIT_S = 5.0


async def current_values(kv: KeyValue, pattern: str, *, meta_only: bool = False) -> list[KeyValue.Entry]:
    """Every key matching ``pattern`` with its latest value (deleted keys left out), in key order."""
    watcher = await kv.watch(pattern, meta_only=meta_only)
    latest: dict[str, KeyValue.Entry] = {}
    received = 0

    def take(entry: KeyValue.Entry) -> None:
        nonlocal received
        received += 1
        if entry.operation in (KV_DEL, KV_PURGE):
            latest.pop(entry.key, None)
        else:
            latest[entry.key] = entry

    try:
        async for entry in watcher:
            if entry is None:  # nats-py's end-of-current-values marker: check it against the server
                break
            take(entry)
        info = await watcher._sub.consumer_info()  # type: ignore[union-attr]  # the watcher's own consumer
        while received < info.delivered.consumer_seq:
            try:
                entry = await watcher.updates(timeout=DELIVERED_WAIT_S)  # type: ignore[no-untyped-call]
            except nats.errors.TimeoutError:
                break
            if entry is not None:
                take(entry)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    return [latest[key] for key in sorted(latest)]
