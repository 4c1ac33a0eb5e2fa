"""current_values on a real nats-server: the latest value of every matching key, deleted keys left out."""

from __future__ import annotations

from gyre_runtime.bus.connection import Bus
from gyre_runtime.state.kv_listing import current_values


async def test_latest_values_of_matching_keys_without_deleted_ones(bus: Bus) -> None:
    kv = await bus.kv("gyre_models")
    for i in range(300):  # more than nats-py's watch queue holds at once
        await kv.put(f"served.k{i:03d}", b"old")
    await kv.put("served.k001", b"new")
    await kv.delete("served.k002")
    await kv.put("version.other", b"not matched")
    entries = await current_values(kv, "served.*")
    assert len(entries) == 299
    values = {e.key: e.value for e in entries}
    assert values["served.k001"] == b"new" and "served.k002" not in values and values["served.k299"] == b"old"
    assert [e.key for e in entries] == sorted(values)


async def test_no_matching_key_is_an_empty_list(bus: Bus) -> None:
    assert await current_values(await bus.kv("gyre_models"), "served.*") == []
