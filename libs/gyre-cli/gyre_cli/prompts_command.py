"""`gyre prompts`: list, show, put and label prompt templates (KV bucket gyre_prompts).

  gyre prompts list
  gyre prompts show NAME [--version N | --label L]     (default: the production label)
  gyre prompts put NAME --file template.yaml           (stores version n+1; prints it)
  gyre prompts label NAME VERSION LABEL                 (e.g. promote: label rag-answer 3 production)

A template file (YAML or JSON) sets any of system_with_sources (``{sources}`` marks where the
numbered sources go), system_without_sources, no_answer_text and description; fields it leaves out
are copied from the latest version. The generate service uses the new label from its next request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from gyre_runtime.bus.connection import connect, ensure_topology
from gyre_runtime.config import load_settings
from gyre_runtime.state.prompts import PromptError, PromptRegistry


class TemplateFileError(ValueError):
    """A template file that cannot be read as a YAML or JSON mapping."""


def read_template_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    data: Any
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TemplateFileError(f"{path} is not valid JSON: {exc}") from exc
    else:
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - PyYAML ships with the dev environment
            raise TemplateFileError(f"reading YAML needs PyYAML (pip install pyyaml), or give {path} as JSON") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TemplateFileError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateFileError(f"{path} must hold a mapping of template fields, not {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


def _json(value: Any) -> str:
    return msgspec.json.format(msgspec.json.encode(value)).decode()


async def run_prompts(args: argparse.Namespace) -> str:
    """The command's output; PromptError or TemplateFileError on a refusal."""
    fields = read_template_file(Path(args.file)) if args.action == "put" else {}
    bus = await connect(load_settings(), name="gyre-cli", patient=False)
    try:
        await ensure_topology(bus)
        registry = await PromptRegistry.open(bus)
        if args.action == "list":
            lines = []
            for name in await registry.names():
                versions = await registry.versions(name)
                labels = await registry.labels(name)
                shown = " ".join(f"{label}={version}" for label, version in sorted(labels.items()))
                lines.append(f"{name}\tversions {','.join(map(str, versions))}\t{shown}")
            return "\n".join(lines) or "no prompt templates yet (the generate service seeds one at its first start)"
        if args.action == "show":
            template = await registry.resolve(args.name, label=args.label, version=args.version)
            labels = {label: v for label, v in (await registry.labels(args.name)).items() if v == template.version}
            return _json({**msgspec.structs.asdict(template), "labels": sorted(labels)})
        if args.action == "put":
            template = await registry.put(args.name, fields)
            return _json(template)
        labels = await registry.set_label(args.name, args.label, args.version)
        return _json({"name": args.name, "labels": labels})
    finally:
        await bus.close()


def cmd_prompts(args: argparse.Namespace) -> int:
    try:
        print(asyncio.run(run_prompts(args)))
    except (PromptError, TemplateFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    prompts = sub.add_parser(
        "prompts", help="list, show, put and label prompt templates", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = prompts.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every template: versions and labels")
    show = actions.add_parser("show", help="one version of a template (default: the production label)")
    show.add_argument("name")
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=int)
    which.add_argument("--label")
    put = actions.add_parser("put", help="store a template file as the next version")
    put.add_argument("name")
    put.add_argument("--file", required=True, help="YAML or JSON with the template's fields")
    label = actions.add_parser("label", help="point a label at a version")
    label.add_argument("name")
    label.add_argument("version", type=int)
    label.add_argument("label")
    prompts.set_defaults(func=cmd_prompts)
