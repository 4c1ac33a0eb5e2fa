"""`gyre`: run the local stack, ingest files, list dead letters, show settings."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from gyre_cli import (
    bus_command,
    dlq_command,
    eval_command,
    ingest_command,
    keys_command,
    models_command,
    prompts_command,
    reindex_command,
    tenants_command,
)
from gyre_cli.client import GatewayClient, find_documents
from gyre_cli.stack import LocalStack, StackError, ensure_api_key
from gyre_runtime.config import DEFAULT_PORTS, load_settings, settings_table


def _ports_from_env() -> tuple[dict[str, int], int, int]:
    ports = dict(DEFAULT_PORTS)
    ports["gateway"] = int(os.environ.get("GYRE_GATEWAY_PORT", str(ports["gateway"])))
    base = os.environ.get("GYRE_PORT_BASE")
    if base:
        services = ("ingest", "embed", "generate", "feedback", "improve", "monitor", "evaluate")
        for offset, name in enumerate(services, start=1):
            ports[name] = int(base) + offset
    nats_port = int(os.environ.get("GYRE_NATS_PORT", "4222"))
    return ports, nats_port, int(os.environ.get("GYRE_NATS_MONITOR_PORT", "8222"))


def cmd_up(args: argparse.Namespace) -> int:
    settings = load_settings()
    data_dir = settings.data_path.resolve()
    model_dir = settings.model_path.resolve()
    models = (settings.embedding_model, settings.generation_model)
    missing = [m for m in models if not (model_dir / m / "manifest.json").exists()]
    if missing:
        print(f"models missing in {model_dir}: {', '.join(missing)}; build them with `just models`", file=sys.stderr)
        return 2
    key = ensure_api_key(data_dir)
    ports, nats_port, nats_monitor = _ports_from_env()
    stack = LocalStack(data_dir=data_dir, model_dir=model_dir, ports=ports, nats_port=nats_port,
                       nats_monitor_port=nats_monitor)
    print(f"starting nats-server and {len(ports)} Gyre processes (logs in {stack.log_dir}) ...", flush=True)
    # Ctrl-C and SIGTERM both stop cleanly (SIGINT explicitly: a shell may start us with it ignored).
    # A closed terminal (SIGHUP) too: the services run in their own sessions and would outlive us.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.default_int_handler)
    try:
        started = time.monotonic()
        stack.start()
        print(f"all processes ready in {time.monotonic() - started:.1f} s", flush=True)
        samples = [Path(p) for p in args.samples]
        if samples:
            client = GatewayClient(stack.gateway_url, key)
            files = find_documents(samples)
            ids = []
            for path in files:
                document_id = "sample/" + path.name
                client.submit_file(path, document_id)
                ids.append(document_id)
            final = client.wait_until_settled(ids)
            indexed = sum(1 for s in final.values() if s == "indexed")
            print(f"sample documents: {indexed} of {len(ids)} indexed", flush=True)
        url = stack.gateway_url
        print(f"""
Gyre is up.
  gateway:  {url}   (OpenAPI: {url}/openapi.json, with the key)
  API key:  {key}   (tenant "default", saved in {data_dir / 'api-key'})
  monitor:  {stack.url_of('monitor')}/stats   (with the key: curl -H "Authorization: Bearer $KEY" ...)
  NATS:     each process has its own credential in {stack.credentials_dir}; the operator's is admin.json

Try:
  curl -s {url}/v1/chat/completions -H "Authorization: Bearer {key}" \\
    -H "Content-Type: application/json" \\
    -d '{{"model": "{settings.generation_model}", "messages": [{{"role": "user", "content": "What is Gyre?"}}]}}'

Ctrl-C stops everything.""", flush=True)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"process exited: {', '.join(dead)}\n{stack.log_tail(dead[0])}", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    finally:
        print("(Ctrl-C again kills every process at once)", flush=True)
        try:
            stack.stop()
        except KeyboardInterrupt:  # stop() has killed everything before re-raising
            pass
        print("stopped", flush=True)


def cmd_settings(args: argparse.Namespace) -> int:
    print("| variable | default | meaning |\n| --- | --- | --- |")
    for name, default, description in settings_table():
        print(f"| `{name}` | `{default}` | {description} |")
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gyre", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run nats-server and every Gyre process on this machine")
    up.add_argument("--samples", nargs="*", default=[], help="files or folders to ingest once ready")
    up.set_defaults(func=cmd_up)
    ingest = sub.add_parser(
        "ingest",
        help="submit files, folders and URLs through the gateway; summary of verdicts; resumable",
        description=ingest_command.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ingest_command.add_ingest_arguments(ingest)
    ingest.set_defaults(func=ingest_command.run_ingest_command)
    dlq_command.add_parser(sub)
    tenants_command.add_parser(sub)
    keys_command.add_parser(sub)
    reindex_command.add_parser(sub)
    prompts_command.add_parser(sub)
    models_command.add_parser(sub)
    eval_command.add_parser(sub)
    bus_command.add_parser(sub)
    settings = sub.add_parser("settings", help="print the settings table (Markdown)")
    settings.set_defaults(func=cmd_settings)
    args = parser.parse_args(argv)
    try:
        sys.exit(args.func(args))
    except ConnectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
