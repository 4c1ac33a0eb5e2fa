"""`gyre tenants`: show and set a tenant's personal-data and duplicate policies (KV bucket gyre_tenants)."""

from __future__ import annotations

import argparse
import asyncio

import msgspec

from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import load_settings
from gyre_runtime.state.tenants import TenantPolicies, TenantPolicy


async def _run(args: argparse.Namespace) -> TenantPolicy:
    settings = load_settings()
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        await ensure_topology(bus)
        policies = await TenantPolicies.open(bus)
        policy = await policies.get(args.tenant)
        if args.action == "set":
            changes = {
                k: v
                for k, v in (("pii", args.pii), ("duplicates", args.duplicates),
                             ("near_duplicate_threshold", args.near_duplicate_threshold))
                if v is not None
            }
            policy = msgspec.structs.replace(policy, **changes)
            await policies.put(args.tenant, policy)
        return policy
    finally:
        await bus.close()


def cmd_tenants(args: argparse.Namespace) -> int:
    policy = asyncio.run(_run(args))
    print(msgspec.json.format(msgspec.json.encode(policy)).decode())
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tenants = sub.add_parser("tenants", help="show or set a tenant's policies")
    tenants.add_argument("action", choices=["show", "set"])
    tenants.add_argument("tenant")
    tenants.add_argument("--pii", choices=["redact", "reject", "allow"])
    tenants.add_argument("--duplicates", choices=["reject", "keep"])
    tenants.add_argument("--near-duplicate-threshold", type=float)
    tenants.set_defaults(func=cmd_tenants)
