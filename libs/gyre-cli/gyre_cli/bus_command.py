"""`gyre bus`: NATS credentials (the stack's, external publishers') and the topology step.

    gyre bus credentials init [--dir D] [--auth-conf FILE]      # admin + one per service, and the server's users
    gyre bus credentials add-publisher --tenant T               # an external system of tenant T; reloads the server
    gyre bus credentials list
    gyre bus declare                                            # streams, consumers, buckets (admin credential);
                                                                # the model store's built defaults into the hub

Defaults follow `gyre up`: credentials in `<data dir>/credentials/nats/`, the server's include file
`<data dir>/nats-auth.conf`, its pid file `<data dir>/nats-server.pid`. For a deployment of your own
(compose, a cluster) pass `--dir` and `--auth-conf` (e.g. `deploy/nats/auth.conf`) and mount each
service's file where its GYRE_NATS_CREDENTIALS_FILE points.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gyre_cli.hub_seed import register_default_models
from gyre_runtime.bus import credentials as bus_credentials
from gyre_runtime.bus.connection import connect, declare_topology
from gyre_runtime.bus.permissions import IdentityError, Naming, inbox_prefix, permissions_for
from gyre_runtime.config import Settings, load_settings


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bus = sub.add_parser("bus", help="NATS credentials and permissions; declare the topology")
    commands = bus.add_subparsers(dest="bus_command", required=True)

    declare = commands.add_parser("declare", help="create or update every stream, consumer and bucket (admin)")
    declare.set_defaults(func=run_declare)

    credentials = commands.add_parser("credentials", help="the bus's users: the stack's and external publishers'")
    actions = credentials.add_subparsers(dest="credentials_command", required=True)
    init = actions.add_parser("init", help="create missing credentials (admin, every service); write the users file")
    add_publisher = actions.add_parser(
        "add-publisher", help="a credential that may publish DocumentSubmitted for one tenant, and nothing else"
    )
    add_publisher.add_argument("--tenant", required=True)
    listing = actions.add_parser("list", help="every credential and what it may publish")
    for parser in (init, add_publisher, listing):
        parser.add_argument(
            "--dir", type=Path, default=None, help="credentials folder (default: <data dir>/credentials/nats)"
        )
    for parser in (init, add_publisher):
        parser.add_argument("--auth-conf", type=Path, default=None,
                            help="the server's users file to rewrite (default: <data dir>/nats-auth.conf)")
    add_publisher.add_argument("--pid-file", type=Path, default=None,
                               help="nats-server's pid file, to reload it (default: <data dir>/nats-server.pid)")
    init.set_defaults(func=run_init)
    add_publisher.set_defaults(func=run_add_publisher)
    listing.set_defaults(func=run_list)


def _folder(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.dir) if args.dir else bus_credentials.default_credentials_dir(settings.data_path)


def _auth_conf(args: argparse.Namespace, settings: Settings) -> Path:
    return Path(args.auth_conf) if args.auth_conf else settings.data_path / "nats-auth.conf"


def run_init(args: argparse.Namespace) -> int:
    settings = load_settings()
    folder = _folder(args, settings)
    bus_credentials.ensure_stack_credentials(folder)
    auth = bus_credentials.write_authorization(folder, _auth_conf(args, settings), Naming(settings.subject_prefix))
    print(f"credentials in {folder} (one 0600 file per identity); the server's users in {auth}")
    print(f"include it from the nats-server config (`include \"{auth.name}\"`) and reload or restart the server")
    return 0


def run_add_publisher(args: argparse.Namespace) -> int:
    settings = load_settings()
    folder = _folder(args, settings)
    try:
        credential = bus_credentials.add_publisher(folder, args.tenant)
    except IdentityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    auth = bus_credentials.write_authorization(folder, _auth_conf(args, settings), Naming(settings.subject_prefix))
    pid_file = Path(args.pid_file) if args.pid_file else settings.data_path / "nats-server.pid"
    reloaded = bus_credentials.reload_server(pid_file)
    path = bus_credentials.credential_path(folder, credential.user)
    print(f"credential: {path} (user {credential.user}; hand the file to the publishing system, keep it secret)")
    print(f"may publish: {settings.subject(f'ingest.submitted.{args.tenant}')} only")
    print(f"inbox prefix for JetStream acknowledgements: {inbox_prefix(credential.user)}")
    print(f"server users: {auth} ({'reloaded' if reloaded else 'reload or restart nats-server to use it'})")
    return 0


def run_list(args: argparse.Namespace) -> int:
    settings = load_settings()
    naming = Naming(settings.subject_prefix)
    for identity in bus_credentials.known_credentials(_folder(args, settings)):
        publish = permissions_for(identity, naming).publish
        shown = ", ".join(s for s in publish if not s.startswith("$")) or "-"
        print(f"{identity:24} publishes: {shown}")
    return 0


async def _declare(settings: Settings) -> list[str]:
    bus = await connect(settings, name="gyre-cli", patient=False)
    try:
        await declare_topology(bus)
        return await register_default_models(bus, settings)
    finally:
        await bus.close()


def run_declare(args: argparse.Namespace) -> int:
    settings = load_settings()
    models = asyncio.run(_declare(settings))
    print("topology declared: streams, durable consumers, key-value buckets, object stores")
    for line in models:
        print(f"model hub: {line}")
    return 0
