"""`gyre models`: the model hub: push model folders, pull them, move aliases and read their history.

  gyre models list                                    (every version, and where each alias points)
  gyre models show REF                                (one version: manifest, lineage, evaluation, aliases)
  gyre models push FOLDER [--base-model M --dataset D --recipe R]
  gyre models pull REF DEST                           (a folder under DEST holding exactly that version)
  gyre models promote ROLE@ALIAS REF --reason TEXT [--evaluation ID] [--reindexed]
  gyre models rollback ROLE@ALIAS --reason TEXT [--reindexed]
  gyre models history ROLE@ALIAS                      (every move, oldest first)
  gyre models compare --set GOLDEN.jsonl --documents DIR CANDIDATE... [--out docs/model-selection.md]
                                                      (each candidate through the evaluate service; report + PNG)

REF is NAME:VERSION:HASH12, NAME (its newest pushed version) or ROLE@ALIAS (e.g. generator@candidate).
Roles are embedder and generator. A promotion checks the version's files in the Object Store against
its manifest first; moving embedder@production to another model needs `gyre reindex` first (then
--reindexed). Unknown models, versions and aliases exit with status 2 and a message naming what exists.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys
from pathlib import Path
from typing import Any

import msgspec

from gyre_cli.compare import command as compare_command
from gyre_cli.subcommand import command_parser
from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import load_settings
from gyre_runtime.hub import AliasRecord, HubError, Lineage, ModelHub, ModelVersion, NotFound, parse_alias_ref

EXIT_NOT_FOUND = 2


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value)).decode()


def _when(record: AliasRecord | ModelVersion) -> str:
    moment = record.moved_at if isinstance(record, AliasRecord) else record.pushed_at
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def current_user() -> str:
    """Who runs the command, for the record (``--by`` overrides it)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER variable and no password entry (a bare container)
        return "unknown"


def describe_move(record: AliasRecord) -> str:
    """One line per move: when, where to, from what, who, why."""
    what = "rollback" if record.rollback else "promote"
    was = f" (was {record.previous})" if record.previous else ""
    extra = f" evaluation {record.evaluation}" if record.evaluation else ""
    extra += " reindexed" if record.reindexed else ""
    return (f"#{record.sequence} {_when(record)} {what} {record.ref} -> {record.version}{was} "
            f"by {record.moved_by}: {record.reason}{extra}")


def describe_versions(versions: list[ModelVersion], aliases: list[AliasRecord]) -> str:
    if not versions:
        return "no model versions in the hub yet (`gyre models push FOLDER`)"
    lines = []
    for version in versions:
        refs = " ".join(r.ref for r in aliases if r.version == version.id)
        size_mb = sum(f.size for f in version.manifest.files.values()) / 1e6
        lines.append(f"{version.id}\t{version.role}\t{size_mb:.1f} MB\tpushed {_when(version)} "
                     f"by {version.pushed_by}\t{refs}".rstrip())
    return "\n".join(lines)


def lineage_of(args: argparse.Namespace) -> Lineage | None:
    if not (args.base_model or args.dataset or args.recipe):
        return None  # the hub takes it from the manifest (source package, recipe hash)
    return Lineage(base_model=args.base_model, dataset=args.dataset, recipe=args.recipe)


async def act(hub: ModelHub, args: argparse.Namespace) -> str:
    """One `gyre models` action on an open hub; its output."""
    if args.action == "list":
        return describe_versions(await hub.versions(), await hub.aliases())
    if args.action == "show":
        version = await hub.resolve(args.ref)
        refs = [r.ref for r in await hub.aliases() if r.version == version.id]
        return _json({**msgspec.structs.asdict(version), "aliases": refs})
    if args.action == "push":
        version = await hub.push(Path(args.folder), pushed_by=args.by, lineage=lineage_of(args))
        return f"pushed {version.id} ({version.role}, {len(version.artifacts)} files)"
    if args.action == "pull":
        version = await hub.resolve(args.ref)
        folder = await hub.materialise(version, Path(args.dest))
        return f"{version.id} in {folder}"
    role, alias = parse_alias_ref(args.alias)
    if args.action == "promote":
        record = await hub.promote(role, alias, args.ref, by=args.by, reason=args.reason,
                                   evaluation=args.evaluation, reindexed=args.reindexed)
        return describe_move(record)
    if args.action == "rollback":
        return describe_move(await hub.rollback(role, alias, by=args.by, reason=args.reason,
                                                reindexed=args.reindexed))
    moves = await hub.history(role, alias)
    if not moves:
        known = ", ".join(r.ref for r in await hub.aliases()) or "none set yet"
        raise NotFound(f"no alias {role}@{alias}; aliases: {known}")
    return "\n".join(describe_move(m) for m in moves)


async def run_models(args: argparse.Namespace) -> str:
    """The command's output; HubError (NotFound: an unknown model, version or alias) on a refusal."""
    bus = await connect(load_settings(), name="gyre-cli", patient=False)
    try:
        await ensure_topology(bus)
        return await act(await ModelHub.open(bus), args)
    finally:
        await bus.close()


def cmd_models(args: argparse.Namespace) -> int:
    if args.action == "compare":  # runs private stacks of its own, not a hub action on the running bus
        return compare_command.run(args)
    try:
        print(asyncio.run(run_models(args)))
    except NotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except HubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    models = command_parser(sub, "models", "the model hub: push, pull, promote and roll back model versions", __doc__)
    actions = models.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every version, and the aliases pointing at it")
    show = actions.add_parser("show", help="one version: manifest, lineage, evaluation, aliases")
    show.add_argument("ref", help="NAME:VERSION:HASH12, NAME or ROLE@ALIAS")
    push = actions.add_parser("push", help="upload a model folder (checked against its manifest) to the hub")
    push.add_argument("folder", help="a model folder with its manifest.json (as `just models` builds them)")
    push.add_argument("--base-model",
                      help="lineage: the model it was built or tuned from (default: its source package)")
    push.add_argument("--dataset", help="lineage: the data it was tuned on")
    push.add_argument("--recipe", help="lineage: the recipe that built it (default: the manifest's recipe hash)")
    pull = actions.add_parser("pull", help="get a version's files from the hub, checksums verified")
    pull.add_argument("ref", help="NAME:VERSION:HASH12, NAME or ROLE@ALIAS")
    pull.add_argument("dest", help="model root: the version lands in DEST/NAME or DEST/hub/NAME-HASH12")
    promote = actions.add_parser("promote", help="point ROLE@ALIAS at a version")
    promote.add_argument("alias", metavar="ROLE@ALIAS", help="e.g. generator@production")
    promote.add_argument("ref", help="the version: NAME:VERSION:HASH12, NAME or ROLE@ALIAS (e.g. generator@candidate)")
    promote.add_argument("--evaluation", help="the evaluation id or report the decision relied on")
    rollback = actions.add_parser("rollback", help="point ROLE@ALIAS back at the version before the current one")
    rollback.add_argument("alias", metavar="ROLE@ALIAS")
    for moving in (promote, rollback):
        moving.add_argument("--reason", required=True, help="why: kept in the alias's history")
        moving.add_argument("--reindexed", action="store_true",
                            help="embedder@production: `gyre reindex` has rebuilt the index with this model")
    for writing in (push, promote, rollback):
        writing.add_argument("--by", default=current_user(), help="who does it (default: your user name)")
    history = actions.add_parser("history", help="every move of ROLE@ALIAS, oldest first")
    history.add_argument("alias", metavar="ROLE@ALIAS")
    compare = actions.add_parser(
        "compare", help="measure candidate models through the evaluate service; write the selection report",
        description=compare_command.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare_command.add_arguments(compare)
    models.set_defaults(func=cmd_models)
