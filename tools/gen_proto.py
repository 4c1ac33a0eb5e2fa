"""Generate proto/ (one JSON Schema per event and asyncapi.yaml) from gyre_contracts.

    python tools/gen_proto.py            # (re)write proto/
    python tools/gen_proto.py --check    # exit 1 listing stale, missing or extra files
    python tools/gen_proto.py --against HEAD   # exit 1 listing backward-incompatible changes

The output is deterministic (no timestamps, fixed order), so it is committed and a test
fails when it is stale. The stream and consumer tables below are documentation only: the
runtime lib holds the authoritative table the services use.
"""

from __future__ import annotations

import argparse
import inspect
import json
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gyre_contracts.base import Event
from gyre_contracts.catalog import ALL_EVENTS
from gyre_contracts.embed import EmbedRequest, EmbedResult, RetrieveRequest, RetrieveResult
from gyre_contracts.envelope import JSON, MSGPACK, SPECVERSION
from gyre_contracts.generate import GenerationLoad, GenerationLoadRequest
from gyre_contracts.schema import (
    DEFAULT_PREFIX,
    all_schemas,
    event_description,
    schema_filename,
    subject_address,
    subject_parameter,
)
from gyre_runtime.bus import topology

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = REPO_ROOT / "proto"
SCHEMAS_DIR = "schemas"
ASYNCAPI_FILE = "asyncapi.yaml"
README_FILE = "README.md"
REGENERATE_HINT = "run `just proto` (python tools/gen_proto.py) and commit proto/"

SERVICES = ("gateway", "ingest", "embed", "generate", "feedback", "improve", "evaluate", "monitor")

# Streams and durable consumers come from the runtime's topology table, the one place they are
# declared; core NATS subscriptions (no stream behind them) are listed here.
STREAMS: dict[str, tuple[str, ...]] = {
    spec.name: tuple(f"gyre.{subject}" for subject in spec.subjects) for spec in topology.STREAMS
}
CORE_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "monitor": ("gyre.>",),
    "gateway": ("gyre.generate.stream.*",),
    "generate": ("gyre.generate.cancel.*",),
}


def _consumers() -> dict[str, tuple[str, ...]]:
    subjects: dict[str, list[str]] = {}
    for consumer in topology.CONSUMERS:
        subjects.setdefault(consumer.service, []).extend(f"gyre.{s}" for s in consumer.filter_subjects)
    for service, extra in CORE_SUBSCRIPTIONS.items():
        subjects.setdefault(service, []).extend(s for s in extra if s not in subjects.get(service, []))
    return {service: tuple(dict.fromkeys(subs)) for service, subs in subjects.items()}


# What each service subscribes to: a durable pull consumer named after the service where
# the subject is in a stream, a core NATS subscription otherwise.
CONSUMERS: dict[str, tuple[str, ...]] = _consumers()

# What each service publishes. Every service with a durable consumer also dead-letters on
# gyre.dlq.<service>; that is derived, not listed.
PRODUCERS: dict[str, tuple[str, ...]] = {
    "gateway": (
        "gyre.ingest.submitted.*",
        "gyre.index.delete",
        "gyre.generate.requested",
        "gyre.generate.cancel.*",
        "gyre.feedback.submitted",
    ),
    "ingest": ("gyre.ingest.accepted", "gyre.ingest.rejected", "gyre.embed.requested"),
    "embed": ("gyre.index.updated", "gyre.index.deleted"),
    "generate": (
        "gyre.generate.stream.*",
        "gyre.generate.completed",
        "gyre.generate.failed",
    ),
    "feedback": ("gyre.feedback.recorded", "gyre.feedback.rejected"),
    "improve": (
        "gyre.improve.dataset",
        "gyre.improve.evaluated",
        "gyre.improve.prompt_promoted",
        "gyre.improve.model_promoted",
    ),
    "evaluate": ("gyre.evaluate.progress", "gyre.evaluate.completed"),
    "monitor": ("gyre.monitor.alert",),
}

# Request/reply subjects: request and reply event, the responder (a queue group named
# after it) and the services that ask.
REQUEST_REPLY: dict[str, tuple[type[Event], type[Event], str, tuple[str, ...]]] = {
    "gyre.retrieve": (RetrieveRequest, RetrieveResult, "embed", ("gateway", "generate", "evaluate")),
    "gyre.embeddings": (EmbedRequest, EmbedResult, "embed", ("gateway",)),
    "gyre.generate.load": (GenerationLoadRequest, GenerationLoad, "generate", ("gateway", "evaluate")),
}

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
EVENT_TYPE_PATTERN = r"^gyre\.[a-z_.]+\.v[0-9]+$"

CLOUDEVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": (
        "CloudEvents 1.0 binary mode: the attributes travel as NATS headers, the event itself is the body."
    ),
    "properties": {
        "ce-specversion": {"type": "string", "const": SPECVERSION},
        "ce-id": {
            "type": "string",
            "minLength": 1,
            "description": "Unique id of this publish; a retry reuses it.",
        },
        "ce-source": {
            "type": "string",
            "minLength": 1,
            "description": "Who published: a service name (gyre/ingest) or another system.",
        },
        "ce-type": {
            "type": "string",
            "pattern": EVENT_TYPE_PATTERN,
            "description": "The event type; equals the body's `type` field.",
        },
        "ce-time": {
            "type": "string",
            "format": "date-time",
            "description": "When the event was published (RFC 3339).",
        },
        "ce-subject": {
            "type": "string",
            "description": (
                "The entity the event is about: document_id, request_id, feedback_id or name; may be empty."
            ),
        },
        "ce-tenant": {
            "type": "string",
            "description": "Extension: the tenant; equals the body's `tenant` field.",
        },
        "ce-traceparent": {
            "type": "string",
            "pattern": TRACEPARENT_PATTERN,
            "description": "Extension: W3C trace context, when the publisher traces.",
        },
        "content-type": {
            "type": "string",
            "enum": [JSON, MSGPACK],
            "default": JSON,
            "description": "Encoding of the body; JSON when absent.",
        },
        "Nats-Msg-Id": {
            "type": "string",
            "description": "Equals ce-id, so JetStream drops duplicate publishes.",
        },
    },
    "required": ["ce-specversion", "ce-id", "ce-source", "ce-type"],
}


# ---------------------------------------------------------------------------- subjects


def subject_matches(pattern: str, subject: str) -> bool:
    """NATS wildcard matching; ``{param}`` tokens in ``subject`` match only wildcards."""
    pattern_tokens = pattern.split(".")
    subject_tokens = subject.split(".")
    for i, token in enumerate(pattern_tokens):
        if token == ">":
            return len(subject_tokens) > i
        if i >= len(subject_tokens):
            return False
        if token == "*":
            continue
        if token != subject_tokens[i]:
            return False
    return len(pattern_tokens) == len(subject_tokens)


def _as_filter(address: str) -> str:
    """``gyre.dlq.{service}`` -> ``gyre.dlq.*``: the subscription filter of an address."""
    return ".".join("*" if t.startswith("{") else t for t in address.split("."))


def channel_id(address: str) -> str:
    """A stable camelCase id: ``gyre.improve.prompt_promoted`` -> improvePromptPromoted."""
    tokens = address.split(".")
    if tokens and tokens[0] == DEFAULT_PREFIX:
        tokens = tokens[1:]
    words: list[str] = []
    for token in tokens:
        if token == ">":
            words.append("all")
        elif token == "*" or token.startswith("{"):
            continue
        else:
            words.extend(token.split("_"))
    return words[0] + "".join(w.capitalize() for w in words[1:])


def stream_of(address: str) -> str | None:
    for stream, subjects in STREAMS.items():
        if any(subject_matches(s, address) for s in subjects):
            return stream
    return None


# ---------------------------------------------------------------------------- asyncapi


@dataclass
class Channel:
    id: str
    address: str | None
    events: list[type[Event]] = field(default_factory=list)
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


def _summary(cls: type[Event]) -> str:
    return event_description(cls).split("\n\n")[0].replace("\n", " ")


def _channel_description(address: str) -> str:
    if address in REQUEST_REPLY:
        responder = REQUEST_REPLY[address][2]
        return (
            f"Request/reply, not persisted: `{responder}` answers in queue group "
            f"`{responder}`; the reply goes to the requester's inbox."
        )
    stream = stream_of(address)
    if stream is None:
        return "Core NATS, not persisted (ephemeral)."
    subjects = ", ".join(f"`{s}`" for s in STREAMS[stream])
    return f"JetStream stream `{stream}` ({subjects})."


def _dead_letter_services() -> list[str]:
    """Services with a durable (stream) consumer: they dead-letter what they give up on."""
    return [service for service in SERVICES if any(stream_of(f) for f in CONSUMERS.get(service, ()) if ">" not in f)]


def build_channels(events: Sequence[type[Event]]) -> dict[str, Channel]:
    """One channel per subject, a reply channel per request/reply subject, and one per
    wildcard subscription (``gyre.>``) listing every event it receives."""
    channels: dict[str, Channel] = {}
    reply_events = {reply for _, reply, _, _ in REQUEST_REPLY.values()}
    for cls in events:
        address = subject_address(cls)
        if cls in reply_events:
            cid = channel_id(address) + "Reply"
            channel = channels.setdefault(
                cid,
                Channel(
                    cid,
                    None,
                    description=(
                        f"Replies to `{address}` requests, sent to the requester's NATS "
                        "inbox (the message's reply subject)."
                    ),
                ),
            )
        else:
            cid = channel_id(address)
            channel = channels.setdefault(cid, Channel(cid, address, description=_channel_description(address)))
            parameter = subject_parameter(cls)
            if parameter is not None:
                channel.parameters[parameter] = _parameter(cls, parameter)
        if channel.address not in (None, address):
            raise ValueError(f"channel id {cid} used by {channel.address} and {address}")
        channel.events.append(cls)
    subscriptions = sorted({f for fs in CONSUMERS.values() for f in fs})
    for subscription in subscriptions:
        matched = [c for c in channels.values() if c.address and subject_matches(subscription, c.address)]
        exact = [c for c in matched if c.address and _as_filter(c.address) == subscription]
        if exact:
            continue
        if not matched:
            raise ValueError(f"subscription {subscription} matches no event subject")
        cid = channel_id(subscription)
        channels[cid] = Channel(
            cid,
            subscription,
            [cls for c in matched for cls in c.events],
            description=(f"Wildcard subscription (core NATS) on `{subscription}`: every event published under it."),
        )
    return channels


def _parameter(cls: type[Event], parameter: str) -> dict[str, Any]:
    if cls.subject == "dlq":
        return {
            "description": "The service that gave up on the message.",
            "enum": _dead_letter_services(),
        }
    return {"description": f"The event's `{parameter}` field ({cls.__name__}.{parameter})."}


def _channel_for(channels: Mapping[str, Channel], subscription: str) -> Channel:
    for channel in channels.values():
        if channel.address is not None and _as_filter(channel.address) == subscription:
            return channel
    raise ValueError(f"no channel for subject {subscription}")


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


def _operation(
    service: str,
    action: str,
    channel: Channel,
    summary: str,
    reply: Channel | None = None,
    queue: str | None = None,
) -> tuple[str, dict[str, Any]]:
    verb = "Receive" if action == "receive" else "Send"
    op_id = f"{service}{verb}{channel.id[0].upper()}{channel.id[1:]}"
    operation: dict[str, Any] = {
        "action": action,
        "channel": _ref("channels", channel.id),
        "summary": summary,
        "tags": [{"name": service}],
        "messages": [_ref("channels", channel.id, "messages", cls.__name__) for cls in channel.events],
    }
    if reply is not None:
        operation["reply"] = {
            "channel": _ref("channels", reply.id),
            "messages": [_ref("channels", reply.id, "messages", cls.__name__) for cls in reply.events],
        }
    if queue is not None:
        operation["bindings"] = {"nats": {"queue": queue, "bindingVersion": "0.1.0"}}
    return op_id, operation


def build_operations(channels: Mapping[str, Channel]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    dlq = next(c for c in channels.values() if c.address and c.address.startswith("gyre.dlq."))
    dead_letterers = _dead_letter_services()
    for service in SERVICES:
        for subscription in CONSUMERS.get(service, ()):
            channel = _channel_for(channels, subscription)
            stream = stream_of(channel.address or "")
            if stream and ">" not in subscription and "*" not in subscription:
                summary = f"Durable pull consumer of `{service}` on stream `{stream}` (replicas share it)."
            else:
                summary = f"Core NATS subscription on `{subscription}`."
            op_id, op = _operation(service, "receive", channel, summary)
            operations[op_id] = op
        for address, (_, _, responder, requesters) in REQUEST_REPLY.items():
            channel = _channel_for(channels, address)
            reply = channels[channel.id + "Reply"]
            if service == responder:
                op_id, op = _operation(
                    service,
                    "receive",
                    channel,
                    f"Answers `{address}` requests (queue group `{responder}`).",
                    reply=reply,
                    queue=responder,
                )
                operations[op_id] = op
            if service in requesters:
                op_id, op = _operation(service, "send", channel, f"Asks `{address}` (request/reply).", reply=reply)
                operations[op_id] = op
        for subject in PRODUCERS.get(service, ()):
            channel = _channel_for(channels, subject)
            op_id, op = _operation(service, "send", channel, f"Publishes on `{subject}`.")
            operations[op_id] = op
        if service in dead_letterers:
            op_id, op = _operation(
                service,
                "send",
                dlq,
                f"Dead-letters what it gives up on, on `gyre.dlq.{service}`.",
            )
            operations[op_id] = op
    return operations


def _streams_table() -> str:
    rows = ["| stream | subjects |", "| --- | --- |"]
    rows += [f"| `{name}` | {', '.join(f'`{s}`' for s in subs)} |" for name, subs in STREAMS.items()]
    return "\n".join(rows)


def _contracts_version() -> str:
    pyproject = REPO_ROOT / "libs" / "gyre-contracts" / "pyproject.toml"
    with pyproject.open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


def build_asyncapi(events: Sequence[type[Event]] = ALL_EVENTS) -> dict[str, Any]:
    channels = build_channels(events)
    description = "\n\n".join(
        [
            "Every event Gyre's services exchange over NATS (JetStream where persisted). "
            "Generated from the `gyre-contracts` package by `tools/gen_proto.py`; do not edit.",
            "Envelope: CloudEvents 1.0 in binary mode. The attributes are NATS headers "
            "(`ce-specversion`, `ce-id`, `ce-source`, `ce-type`, `ce-time`, `ce-subject`, "
            "`ce-tenant`, `ce-traceparent`); the event is the body, JSON by default or "
            "MessagePack when `content-type` is `application/msgpack`. `Nats-Msg-Id` equals "
            "`ce-id`, so JetStream drops a duplicate publish. The body's `type` field equals "
            "`ce-type`; a breaking change gets a new version in the type.",
            f"Subjects start with a configurable prefix, `{DEFAULT_PREFIX}` by default.",
            "Streams (the services' runtime declares them; listed here for reference):\n\n" + _streams_table(),
        ]
    )
    return {
        "asyncapi": "3.0.0",
        "id": "urn:gyre:events",
        "info": {
            "title": "Gyre events",
            "version": _contracts_version(),
            "description": description,
            "tags": [{"name": s} for s in SERVICES],
        },
        "defaultContentType": JSON,
        "servers": {
            "local": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The embedded nats-server that `just up` starts (JetStream on).",
            }
        },
        "channels": {cid: _channel_doc(c) for cid, c in channels.items()},
        "operations": build_operations(channels),
        "components": {
            "schemas": {"CloudEventHeaders": CLOUDEVENT_HEADERS},
            "messageTraits": {
                "CloudEvent": {
                    "headers": _ref("components", "schemas", "CloudEventHeaders"),
                }
            },
            "messages": {cls.__name__: _message_doc(cls) for cls in events},
        },
    }


def _channel_doc(channel: Channel) -> dict[str, Any]:
    doc: dict[str, Any] = {"address": channel.address, "description": channel.description}
    if channel.parameters:
        doc["parameters"] = channel.parameters
    doc["messages"] = {cls.__name__: _ref("components", "messages", cls.__name__) for cls in channel.events}
    return doc


def _message_doc(cls: type[Event]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": cls.event_type(),
        "title": cls.__name__,
        "summary": _summary(cls),
    }
    description = event_description(cls)
    if description != doc["summary"]:
        doc["description"] = description
    doc["contentType"] = JSON
    doc["payload"] = {"$ref": f"./{SCHEMAS_DIR}/{schema_filename(cls)}"}
    doc["traits"] = [_ref("components", "messageTraits", "CloudEvent")]
    return doc


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line strings; never aliases (every ref is spelled out)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


# ---------------------------------------------------------------------------- files


def render(events: Sequence[type[Event]] = ALL_EVENTS) -> dict[str, str]:
    """Every file of proto/, path relative to proto/ -> content."""
    files: dict[str, str] = {}
    for name, schema in all_schemas(tuple(events)).items():
        text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False)
        files[f"{SCHEMAS_DIR}/{name}"] = text + "\n"
    header = "# Generated by tools/gen_proto.py from gyre_contracts: do not edit.\n# Regenerate with `just proto`.\n"
    body = yaml.dump(build_asyncapi(events), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 16)
    files[ASYNCAPI_FILE] = header + body
    files[README_FILE] = _readme(events)
    return dict(sorted(files.items()))


def _readme(events: Sequence[type[Event]]) -> str:
    rows = "\n".join(
        f"| `{cls.event_type()}` | {cls.__name__} | `{subject_address(cls)}` | "
        f"[schema]({SCHEMAS_DIR}/{schema_filename(cls)}) |"
        for cls in events
    )
    return (
        inspect.cleandoc(
            """
        # proto/: Gyre's event contracts for other languages

        Generated from the `gyre-contracts` package by `tools/gen_proto.py`; do not edit.
        Regenerate with `just proto`; a unit test fails when these files are stale.

        - `schemas/<type>.schema.json`: JSON Schema 2020-12 of each event body.
        - `asyncapi.yaml`: AsyncAPI 3.0 description of subjects, streams, messages,
          the CloudEvents headers, and which service sends and receives what.

        | type | event | subject | schema |
        | --- | --- | --- | --- |
        """
        )
        + "\n"
        + rows
        + "\n"
    )


def _existing_files(proto_dir: Path) -> set[str]:
    if not proto_dir.is_dir():
        return set()
    return {p.relative_to(proto_dir).as_posix() for p in proto_dir.rglob("*") if p.is_file()}


def check(proto_dir: Path = PROTO_DIR) -> list[str]:
    """What differs between proto_dir and what the contracts generate; empty when current."""
    expected = render()
    existing = _existing_files(proto_dir)
    problems: list[str] = []
    for name, content in expected.items():
        path = proto_dir / name
        if name not in existing:
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"stale: {path}")
    problems += [f"extra: {proto_dir / name}" for name in sorted(existing - expected.keys())]
    return problems


def write(proto_dir: Path = PROTO_DIR) -> list[str]:
    """Bring proto_dir up to date (proto/ is wholly generated: extra files are removed)."""
    expected = render()
    changes: list[str] = []
    for name, content in expected.items():
        path = proto_dir / name
        if path.is_file() and path.read_text(encoding="utf-8") == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8", newline="\n")
        changes.append(f"wrote: {path}")
    for name in sorted(_existing_files(proto_dir) - expected.keys()):
        (proto_dir / name).unlink()
        changes.append(f"removed: {proto_dir / name}")
    return changes


# ---------------------------------------------------------------------------- compatibility

_ANNOTATIONS = frozenset({"title", "description", "default", "examples"})


def _shape(schema: Any) -> Any:
    """A schema without its annotations: what decides which documents are valid."""
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _ANNOTATIONS and not k.startswith("x-")}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def _object_changes(where: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    old_props: Mapping[str, Any] = old.get("properties", {})
    new_props: Mapping[str, Any] = new.get("properties", {})
    old_required = set(old.get("required", ()))
    for name in old_props:
        if name not in new_props:
            problems.append(f"{where}.{name}: field removed")
        elif _shape(old_props[name]) != _shape(new_props[name]):
            problems.append(
                f"{where}.{name}: type changed from {json.dumps(_shape(old_props[name]))} "
                f"to {json.dumps(_shape(new_props[name]))}"
            )
    for name in new.get("required", ()):
        if name not in old_required:
            added = "new field" if name not in old_props else "field"
            problems.append(f"{where}.{name}: {added} is required (give it a default)")
    return problems


def breaking_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Changes to one event's schema that break existing publishers or consumers.

    Adding an optional field is fine. Removing a field, changing its type, or requiring a
    field old publishers do not send is not: such a change needs a new version (tag .v2).
    """
    title = str(new.get("title") or old.get("title") or "event")
    problems = _object_changes(title, old, new)
    old_defs: Mapping[str, Any] = old.get("$defs", {})
    new_defs: Mapping[str, Any] = new.get("$defs", {})
    for name in sorted(old_defs.keys() & new_defs.keys()):
        problems += _object_changes(f"{title}/{name}", old_defs[name], new_defs[name])
    return problems


def _git(repo: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    except OSError:
        return None
    return result.stdout if result.returncode == 0 else None


def baseline_schemas(ref: str = "HEAD", repo: Path = REPO_ROOT) -> dict[str, dict[str, Any]] | None:
    """The schemas committed at ``ref`` (file name -> schema); None when git has none."""
    listing = _git(repo, "ls-tree", "--name-only", f"{ref}:proto/{SCHEMAS_DIR}")
    if listing is None:
        return None
    schemas: dict[str, dict[str, Any]] = {}
    for name in listing.split():
        text = _git(repo, "show", f"{ref}:proto/{SCHEMAS_DIR}/{name}")
        if text is not None and name.endswith(".schema.json"):
            schemas[name] = json.loads(text)
    return schemas or None


def compatibility_problems(
    baseline: Mapping[str, Mapping[str, Any]],
    current: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[str]:
    """Breaking changes from ``baseline`` schemas to the contracts' current ones."""
    current = all_schemas() if current is None else current
    problems: list[str] = []
    for name, old in sorted(baseline.items()):
        if name not in current:
            problems.append(f"{name}: event type removed (keep it until no one publishes it)")
        else:
            problems += [f"{name}: {p}" for p in breaking_changes(old, current[name])]
    return problems


# ---------------------------------------------------------------------------- cli


def _report(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="report, do not write")
    parser.add_argument(
        "--against",
        metavar="REF",
        help="report breaking changes against the schemas committed at git REF",
    )
    parser.add_argument("--proto-dir", type=Path, default=PROTO_DIR)
    args = parser.parse_args(argv)
    status = 0
    if args.against:
        baseline = baseline_schemas(args.against)
        if baseline is None:
            print(f"no proto/{SCHEMAS_DIR} at {args.against}: nothing to compare")
        else:
            problems = compatibility_problems(baseline)
            _report(f"breaking: {p}" for p in problems)
            status = 1 if problems else status
        if not args.check:
            return status
    if args.check:
        problems = check(args.proto_dir)
        _report(problems)
        if problems:
            print(f"proto/ is out of date: {REGENERATE_HINT}", file=sys.stderr)
            return 1
        return status
    _report(write(args.proto_dir))
    return status


if __name__ == "__main__":
    sys.exit(main())
