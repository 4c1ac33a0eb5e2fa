"""`gyre dlq`: list the latest dead letters, or redact (or delete) the personal data they copied.

A dead letter holds a copy of the message that failed: a whole document, a conversation, a
comment. `gyre dlq redact` rewrites the letters it selects with personal data replaced by
placeholders and raw document bytes removed (`--mode pii`), keeps only their headers and error
(`--mode drop`), or deletes them (`--mode delete`). A rewritten letter is stored anew (a stream
message cannot be changed in place), so the stream keeps it for GYRE_RETENTION_DLQ_DAYS from then.
New letters are redacted as they are written (GYRE_DEAD_LETTER_REDACTION, `pii` by default).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, cast

from nats.js.errors import NotFoundError

from gyre_contracts import DeadLetter, EnvelopeError, decode_event, new_id, utc_now
from gyre_runtime.bus.connection import Bus, connect
from gyre_runtime.bus.dead_letters import REDACTED_HEADER, Redaction, redact_dead_letter
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.config import Settings, load_settings

DLQ_STREAM = "GYRE_DLQ"
Mode = Literal["pii", "drop", "delete"]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd]?)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 86400}


def parse_duration(text: str) -> dt.timedelta:
    """``90s``, ``30m``, ``12h``, ``7d``; a bare number is days."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is no duration: write e.g. 90s, 30m, 12h or 7d")
    return dt.timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])


@dataclass
class RedactionSummary:
    redacted: int = 0
    deleted: int = 0
    kept: int = 0  # not selected, or already redacted that way
    unreadable: int = 0  # no DeadLetter (left as they are)


async def stored_letters(bus: Bus, latest: int | None = None) -> list[tuple[int, DeadLetter | None]]:
    """(stream sequence, letter or None when it does not decode) of every letter now in the stream,
    or of those among the ``latest`` sequences."""
    stream = bus.stream_name(DLQ_STREAM)
    info = await bus.js.stream_info(stream)
    letters: list[tuple[int, DeadLetter | None]] = []
    if not info.state.messages:
        return letters
    first = info.state.first_seq if latest is None else max(info.state.first_seq, info.state.last_seq - latest + 1)
    for seq in range(first, info.state.last_seq + 1):
        try:
            raw = await bus.js.get_msg(stream, seq)
        except NotFoundError:  # deleted or aged out
            continue
        try:
            letters.append((seq, decode_event(raw.data or b"", DeadLetter, dict(raw.headers or {}))))
        except EnvelopeError:
            letters.append((seq, None))
    return letters


def selected(letter: DeadLetter, *, service: str | None, older_than: dt.timedelta | None, now: dt.datetime) -> bool:
    if service is not None and letter.service != service:
        return False
    return older_than is None or letter.dead_at <= now - older_than


async def redact_letters(
    settings: Settings, *, mode: Mode, service: str | None = None, older_than: dt.timedelta | None = None,
    dry_run: bool = False,
) -> RedactionSummary:
    bus = await connect(settings, name="gyre-cli", patient=False)
    summary = RedactionSummary()
    try:
        publisher = Publisher(bus, "cli")
        stream = bus.stream_name(DLQ_STREAM)
        now = utc_now()
        for seq, letter in await stored_letters(bus):
            if letter is None:
                summary.unreadable += 1
                continue
            if not selected(letter, service=service, older_than=older_than, now=now):
                summary.kept += 1
                continue
            if mode != "delete" and letter.headers.get(REDACTED_HEADER) in (mode, "drop"):
                summary.kept += 1
                continue
            if dry_run:
                summary.deleted += mode == "delete"
                summary.redacted += mode != "delete"
                continue
            if mode != "delete":
                # The copy first: a failure in between leaves the letter twice, never lost.
                await publisher.publish(
                    redact_dead_letter(letter, cast(Redaction, mode)), subject=f"dlq.{letter.service}",
                    event_id=f"dlq-redacted-{new_id()}",
                )
                summary.redacted += 1
            else:
                summary.deleted += 1
            await bus.js.delete_msg(stream, seq)
    finally:
        await bus.close()
    return summary


async def list_letters(settings: Settings, limit: int) -> None:
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        for seq, letter in await stored_letters(bus, latest=limit):
            if letter is None:
                print(f"#{seq} (not a dead letter)")
                continue
            payload = base64.b64decode(letter.payload)[:80]
            redacted = letter.headers.get(REDACTED_HEADER)
            print(f"#{seq} {letter.dead_at:%Y-%m-%d %H:%M:%S} {letter.service} {letter.original_subject} "
                  f"attempts={letter.attempts} error={letter.error!r} payload={payload!r}"
                  + (f" redacted={redacted}" if redacted else ""))
    finally:
        await bus.close()


def run_dlq_command(args: argparse.Namespace) -> int:
    settings = load_settings()
    if getattr(args, "dlq_command", None) != "redact":
        asyncio.run(list_letters(settings, args.limit))
        return 0
    summary = asyncio.run(redact_letters(
        settings, mode=args.mode, service=args.service, older_than=args.older_than, dry_run=args.dry_run,
    ))
    verb = "would be" if args.dry_run else "were"
    print(f"{summary.redacted} letters {verb} redacted ({args.mode}), {summary.deleted} deleted, "
          f"{summary.kept} kept, {summary.unreadable} unreadable")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dlq = sub.add_parser("dlq", help="list the latest dead letters; `gyre dlq redact` removes personal data",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    dlq.add_argument("--limit", type=int, default=20, help="letters listed (the latest)")
    dlq.set_defaults(func=run_dlq_command)
    actions = dlq.add_subparsers(dest="dlq_command")
    redact = actions.add_parser("redact", help="rewrite or delete stored dead letters")
    redact.add_argument("--mode", choices=("pii", "drop", "delete"), default="pii",
                        help="pii: personal data replaced (default); drop: headers and error only; delete")
    redact.add_argument("--service", default=None, help="only letters of this service (ingest, embed, ...)")
    redact.add_argument("--older-than", type=parse_duration, default=None, metavar="DURATION",
                        help="only letters dead for longer than this (90s, 30m, 12h, 7d)")
    redact.add_argument("--dry-run", action="store_true", help="count what would change, change nothing")
    redact.set_defaults(func=run_dlq_command)
