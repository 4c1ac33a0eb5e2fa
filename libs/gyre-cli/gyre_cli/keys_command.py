"""`gyre keys`: create, list and revoke API keys (KV bucket gyre_api_keys; only the keys' hashes are stored).

  gyre keys create --tenant acme --scopes query,feedback [--rate-limit 60]   prints the key once
  gyre keys list [--tenant acme]                                              never shows a key
  gyre keys revoke gyre-AbCd1234                                              by the key id from `list`

Scopes: ingest (documents), query (search, chat, embeddings, models), feedback, admin (everything).
A revoked key stops working within GYRE_API_KEY_CACHE_S seconds on every gateway.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

from gyre_cli.subcommand import command_parser
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.state.api_keys import ApiKeyError, ApiKeyRecord, ApiKeyStore, Scope, parse_scopes


@contextlib.asynccontextmanager
async def _key_store(settings: Settings) -> AsyncIterator[ApiKeyStore]:
    """The key store on a connection of its own, closed when the command is done."""
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        await ensure_topology(bus)
        yield await ApiKeyStore.open(bus)
    finally:
        await bus.close()


async def create_key(
    settings: Settings, tenant: str, scopes: tuple[Scope, ...], rate_limit_per_minute: int | None = None
) -> tuple[str, ApiKeyRecord]:
    """A new key for ``tenant``: the key (shown once) and its stored record."""
    async with _key_store(settings) as store:
        return await store.create(tenant, scopes, rate_limit_per_minute)


async def list_keys(settings: Settings, tenant: str | None = None) -> list[ApiKeyRecord]:
    async with _key_store(settings) as store:
        return await store.list(tenant)


async def revoke_key(settings: Settings, key_id: str) -> ApiKeyRecord | None:
    """The revoked record; None if no key has this id."""
    async with _key_store(settings) as store:
        return await store.revoke(key_id)


def key_table(records: list[ApiKeyRecord]) -> str:
    """One line per key: id, tenant, scopes, rate limit, created, revoked (never the key: it is not stored)."""
    rows = [("KEY ID", "TENANT", "SCOPES", "RATE/MIN", "CREATED", "REVOKED")]
    for r in records:
        rows.append(
            (
                r.key_id,
                r.tenant,
                ",".join(r.scopes),
                str(r.rate_limit_per_minute) if r.rate_limit_per_minute else "default",
                f"{r.created_at:%Y-%m-%d %H:%M:%S}",
                f"{r.revoked_at:%Y-%m-%d %H:%M:%S}" if r.revoked_at else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def cmd_keys(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.action == "create":
        try:
            scopes = parse_scopes(args.scopes)
            key, record = asyncio.run(create_key(settings, args.tenant, scopes, args.rate_limit))
        except ApiKeyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(key)
        print(
            f"key id {record.key_id}, tenant {record.tenant!r}, scopes {','.join(record.scopes)}; "
            "this is the only time the key is shown: store it now",
            file=sys.stderr,
        )
        return 0
    if args.action == "list":
        print(key_table(asyncio.run(list_keys(settings, args.tenant))))
        return 0
    revoked = asyncio.run(revoke_key(settings, args.key_id))
    if revoked is None:
        print(f"error: no key with id {args.key_id!r} (see `gyre keys list`)", file=sys.stderr)
        return 1
    print(f"revoked {revoked.key_id} (tenant {revoked.tenant!r})")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = command_parser(sub, "keys", "create, list and revoke API keys", __doc__)
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--scopes", required=True, help="comma separated: ingest, query, feedback, admin")
    create.add_argument("--rate-limit", type=int, default=None, help="requests per minute (default: the gateway's)")
    listing = actions.add_parser("list", help="list keys (ids, tenants, scopes; never the keys)")
    listing.add_argument("--tenant", default=None)
    revoke = actions.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    keys.set_defaults(func=cmd_keys)
