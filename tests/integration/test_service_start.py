"""A service whose start meets a bus that does not answer yet retries until it does (no replica stuck unready)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.config import load_settings
from gyre_runtime.service import Service
from tests.support.nats_server import NatsServer


@pytest.mark.timeout(120)
async def test_a_start_that_meets_no_jetstream_is_retried_until_jetstream_answers(tmp_path: Path) -> None:
    # JetStream off: the topology and consumer calls get no answer, as on a cluster still electing leaders.
    server = NatsServer(jetstream=False, store_dir=tmp_path / "nats")
    server.start()
    try:
        settings = load_settings({}, nats_url=server.url, data_dir=str(tmp_path / "data"))
        service = Service("feedback", settings)
        starts: list[int] = []

        async def count_starts(_: Service) -> None:
            starts.append(1)

        async def ignore(event: object, ctx: MessageContext) -> None:
            return None

        service.on_start(count_starts)
        service.consume("feedback", ignore)
        task = asyncio.create_task(service._start_in_background())
        while service.waiting_for_bus is None:
            assert not task.done(), service.startup_error
            await asyncio.sleep(0.05)
        assert not service.ready and service.startup_error is None

        server.jetstream = True
        server.restart()
        await asyncio.wait_for(task, timeout=90)

        assert service.ready and service.startup_error is None and service.waiting_for_bus is None
        assert [w.spec.durable for w in service.workers] == ["feedback"]
        assert len(starts) == 1  # hooks of the failed attempts never ran twice into a live service
        await service.stop()
    finally:
        server.stop(remove_store=True)
