"""Publish -> handler-start latency of one durable consumer, messages one at a time; prints JSON.

What the bus adds to every event's trip (and to a chat's time to first token, once for the
GenerationRequested): the consumer here is ingest's, its handler only notes the time. It uses only
APIs older than the move to FastStream (Service.consume, Publisher.publish), so ``bus_before_after``
runs this same file in the checkout from before the move.

Run: `python -m tests.bench.bus_latency 300` (from a checkout's root).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from typing import Any

from gyre_contracts import DocumentSubmitted
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import load_settings
from gyre_runtime.service import Service
from tests.support.nats_server import NatsServer

WARM_UP = 20


async def measure(count: int) -> dict[str, float]:
    with NatsServer() as server, tempfile.TemporaryDirectory() as data:
        settings = load_settings({}, nats_url=server.url, data_dir=data)
        bus = await connect(settings, name="bench-latency")
        await ensure_topology(bus)
        arrived: asyncio.Queue[float] = asyncio.Queue()

        async def handle(event: Any, ctx: Any) -> None:
            arrived.put_nowait(time.perf_counter())

        service = Service("ingest", settings)
        service.consume("ingest", handle)
        await service.start()
        publisher = Publisher(bus, "gateway")
        latencies: list[float] = []
        for i in range(count + WARM_UP):
            sent = time.perf_counter()
            await publisher.publish(DocumentSubmitted(document_id=f"latency-{i}", text="x"))
            received = await asyncio.wait_for(arrived.get(), 10)
            if i >= WARM_UP:
                latencies.append((received - sent) * 1000)
            await asyncio.sleep(0.01)  # one at a time: the consumer is idle when each arrives
        await service.stop()
        await bus.close()
    latencies.sort()
    return {"p50_ms": statistics.median(latencies), "p95_ms": latencies[int(0.95 * len(latencies))]}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 300))))
