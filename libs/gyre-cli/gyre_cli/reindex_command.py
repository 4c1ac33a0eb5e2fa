"""`gyre reindex`: rebuild the vector collection from the stored events (e.g. for another embedding model), then switch.

The embed service builds the new collection by replaying every ChunksReady the GYRE_EMBED stream
still holds (the current version of each document), writes live updates to both collections while it
runs, then switches search to the new collection and removes the old one. Search keeps answering
throughout. Documents whose events are older than the stream's retention (30 days) cannot be
replayed: the rebuild then refuses to switch unless --allow-missing is given.

With --wait, a completed switch also moves the hub's `embedder@production` to the model that now
serves search (the only way that alias moves: a promotion alone would leave vectors of another
model in the collection).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys

from nats.aio.msg import Msg

from gyre_cli.subcommand import command_parser
from gyre_contracts import (
    EnvelopeError,
    ReindexCompleted,
    ReindexFailed,
    ReindexProgress,
    ReindexRequested,
    decode_event,
)
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import load_settings
from gyre_runtime.hub import HubError, ModelHub, ModelVersion, NotFound

Outcome = ReindexCompleted | ReindexFailed


def default_collection(now: dt.datetime | None = None) -> str:
    """``gyre_chunks_<UTC timestamp>``: a fresh name each run, sorting by creation time."""
    return f"gyre_chunks_{(now or dt.datetime.now(dt.UTC)):%Y%m%d%H%M%S}"


def describe_completed(done: ReindexCompleted) -> str:
    lines = [
        f"collection {done.collection} now serves search (was {done.previous_collection})",
        f"  documents: {done.documents}   points: {done.points} (previously {done.previous_points})",
        f"  events replayed: {done.replayed_events}, skipped (superseded, deleted): {done.skipped_events}",
        f"  embedding model: {done.embedding_model}   took {done.duration_ms / 1000:.1f} s",
    ]
    if done.missing_count:
        lines.append(f"  missing (no longer in the stream): {done.missing_count}: {', '.join(done.missing_documents)}")
    return "\n".join(lines)


def describe_failed(failed: ReindexFailed) -> str:
    then = "gave up" if failed.final else "will retry"
    text = f"rebuilding {failed.collection} failed (attempt {failed.attempt}, {then}): {failed.error}"
    if failed.missing_count:
        text += f"\n  missing documents ({failed.missing_count}): {', '.join(failed.missing_documents)}"
    return text


async def request_reindex(args: argparse.Namespace) -> Outcome | None:
    settings = load_settings()
    bus = await connect(settings, name="gyre-cli", patient=False)
    outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
    request = ReindexRequested(
        collection=args.collection or default_collection(),
        embedding_model=args.embedding_model or "",
        allow_missing=args.allow_missing,
    )
    try:
        await ensure_topology(bus)

        async def on_event(msg: Msg) -> None:
            headers = dict(msg.headers or {})
            if headers.get("ce-subject") != request.request_id:
                return
            try:
                event = decode_event(msg.data, ReindexProgress | ReindexCompleted | ReindexFailed, headers)
            except EnvelopeError:
                return  # not for us after all (another publisher's bad message)
            if isinstance(event, ReindexProgress):
                print(f"  replayed {event.replayed_events}/{event.stream_events} events, "
                      f"{event.documents} documents, {event.points} points", flush=True)
            elif isinstance(event, ReindexFailed) and not event.final:
                print(describe_failed(event), file=sys.stderr, flush=True)
            elif not outcome.done():
                outcome.set_result(event)

        if args.wait:  # subscribed before publishing, so no outcome can slip by
            for event_type in (ReindexProgress, ReindexCompleted, ReindexFailed):
                await bus.nc.subscribe(bus.subject(event_type.subject), cb=on_event)
        await Publisher(bus, "cli").publish(request)
        print(f"reindex requested: building {request.collection} (request {request.request_id})", flush=True)
        if not args.wait:
            return None
        return await asyncio.wait_for(outcome, args.timeout)
    finally:
        await bus.close()


def serves_as(version: ModelVersion, served: str) -> bool:
    """Whether ``served`` (what embed records: ``name:version:<sha256 of its model file, 12>``) is ``version``.

    The hub names a version by its folder digest; the embed service names the model it runs by the
    main file's checksum (the name its collections and events have carried from the start)."""
    m = version.manifest
    return served in (version.id, f"{m.name}:{m.version}:{m.sha256[:12]}")


async def move_embedder_alias(done: ReindexCompleted) -> str:
    """After a switch, ``embedder@production`` names the model that now serves search (pushed if the hub lacks it).

    This is the one way the embedder alias moves: `gyre models promote` refuses an embedder (its
    vectors would not match the collection's), the completed reindex is the evidence it needs."""
    settings = load_settings()
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        hub = await ModelHub.open(bus, source="cli")
        try:
            version = await hub.resolve(done.embedding_model)
        except NotFound:
            folder = settings.model_path / done.embedding_model.split(":", 1)[0]
            version = await hub.push(folder, pushed_by="gyre reindex")
        if not serves_as(version, done.embedding_model):
            return (f"embedder@production not moved: the model store holds {version.id}, "
                    f"search uses {done.embedding_model}")
        record = await hub.promote("embedder", "production", version.id, by="gyre reindex", reindexed=True,
                                   reason=f"reindex {done.request_id}: {done.collection} serves search")
        return f"embedder@production -> {record.version}"
    finally:
        await bus.close()


def cmd_reindex(args: argparse.Namespace) -> int:
    try:
        outcome = asyncio.run(request_reindex(args))
    except TimeoutError:
        print(f"no outcome within {args.timeout:.0f} s; the rebuild may still be running "
              "(watch the embed service's /stats or log)", file=sys.stderr)
        return 1
    if outcome is None:
        return 0
    if isinstance(outcome, ReindexCompleted):
        print(describe_completed(outcome))
        try:
            print(asyncio.run(move_embedder_alias(outcome)))
        except (HubError, OSError) as exc:
            print(f"search switched, but embedder@production was not moved: {exc}", file=sys.stderr)
            return 1
        return 0
    print(describe_failed(outcome), file=sys.stderr)
    return 1


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    reindex = command_parser(
        sub, "reindex", "rebuild the vector collection from the stored events, then switch search to it", __doc__
    )
    reindex.add_argument("--collection", help="name of the new collection (default: gyre_chunks_<UTC timestamp>)")
    reindex.add_argument(
        "--embedding-model",
        help="model folder in the model store to embed with (default: the active collection's model)",
    )
    reindex.add_argument("--allow-missing", action="store_true",
                         help="switch even if some searchable documents are no longer in the stream")
    reindex.add_argument("--wait", action="store_true", help="wait for the outcome, showing progress")
    reindex.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits (default 3600)")
    reindex.set_defaults(func=cmd_reindex)
