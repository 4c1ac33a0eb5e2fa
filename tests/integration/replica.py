"""One replica of the ingest consumer, run as its own process by the bus tests.

It runs the real ``Service`` shell (no HTTP) with a handler that reports on core NATS:
``test.started`` when it begins a message, then, after ``--work-ms``, ``test.handled``
(flushed before the handler returns, so the report always precedes the ack). Prints
``ready`` on stdout once its consumers are started; stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
import tempfile

from gyre_contracts import DocumentSubmitted
from gyre_runtime.bus import topology
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.config import load_settings
from gyre_runtime.logging import configure_logging
from gyre_runtime.service import Service

STARTED_SUBJECT = "test.started"
HANDLED_SUBJECT = "test.handled"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nats", required=True, help="NATS server URL")
    parser.add_argument("--name", required=True, help="replica name carried in every report")
    parser.add_argument("--work-ms", type=int, default=0, help="how long the handler works on each message")
    parser.add_argument("--ack-wait", type=float, default=None, help="override the consumer's ack wait (seconds)")
    parser.add_argument("--max-deliver", type=int, default=None, help="override settings.max_deliver")
    parser.add_argument("--data-dir", default=None, help="data dir (default: a temporary one)")
    return parser.parse_args(argv)


def override_ingest_consumer(ack_wait_s: float) -> None:
    """Every replica must pass the same value: the durable consumer's config is shared by all."""
    topology.CONSUMERS = tuple(
        dataclasses.replace(spec, ack_wait_s=ack_wait_s) if spec.durable == "ingest" else spec
        for spec in topology.CONSUMERS
    )


async def run(args: argparse.Namespace) -> None:
    if args.ack_wait is not None:
        override_ingest_consumer(args.ack_wait)
    overrides: dict[str, object] = {
        "nats_url": args.nats,
        "data_dir": args.data_dir or tempfile.mkdtemp(prefix=f"gyre-replica-{args.name}-"),
    }
    if args.max_deliver is not None:
        overrides["max_deliver"] = args.max_deliver
    settings = load_settings({}, **overrides)
    service = Service("ingest", settings)

    async def report(subject: str, event: DocumentSubmitted, ctx: MessageContext) -> None:
        body = {"replica": args.name, "document_id": event.document_id, "delivery": ctx.delivery}
        await service.bus.nc.publish(subject, json.dumps(body).encode())
        await service.bus.nc.flush()

    async def handle(event: DocumentSubmitted, ctx: MessageContext) -> None:
        await report(STARTED_SUBJECT, event, ctx)
        await asyncio.sleep(args.work_ms / 1000)
        await report(HANDLED_SUBJECT, event, ctx)

    service.consume("ingest", handle)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await service.start()
    print("ready", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()


def main() -> None:
    args = parse_args()
    configure_logging(f"ingest-{args.name}", "warning")
    asyncio.run(run(args))
    sys.exit(0)


if __name__ == "__main__":
    main()
