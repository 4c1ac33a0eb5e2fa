"""JSON Schema (2020-12) of every event, for publishers and consumers in other languages."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec

from gyre_contracts.base import Event
from gyre_contracts.catalog import ALL_EVENTS

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_URI = "https://gyre.dev/schemas/"
DEFAULT_PREFIX = "gyre"

# Events whose subject has one more token, taken from a field of the event:
# ``gyre.generate.stream.<request_id>``, ``gyre.dlq.<service>`` and ``gyre.ingest.submitted.<tenant>``
# (the tenant in the subject is what NATS permissions can restrict: an external publisher may publish
# for its own tenant only, and ingest dead-letters an event whose ``tenant`` field says otherwise).
SUBJECT_PARAMETERS: dict[str, str] = {
    "generate.stream": "request_id",
    "generate.cancel": "request_id",
    "dlq": "service",
    "ingest.submitted": "tenant",
}


def subject_parameter(cls: type[Event]) -> str | None:
    """The field whose value is the subject's last token, or None for a fixed subject."""
    return SUBJECT_PARAMETERS.get(cls.subject)


def event_subject(event: Event) -> str:
    """The subject (suffix after the prefix) this event is published on: ``ingest.submitted.tenant-a``."""
    parameter = subject_parameter(type(event))
    return f"{event.subject}.{getattr(event, parameter)}" if parameter else event.subject


def subject_address(cls: type[Event], prefix: str = DEFAULT_PREFIX) -> str:
    """The subject ``cls`` travels on, AsyncAPI style: ``gyre.dlq.{service}``."""
    address = f"{prefix}.{cls.subject}"
    parameter = subject_parameter(cls)
    return f"{address}.{{{parameter}}}" if parameter else address


def event_version(cls: type[Event]) -> int:
    """The version number at the end of the tag: 1 for ``gyre.ingest.submitted.v1``."""
    _, _, version = cls.event_type().rpartition(".v")
    return int(version)


def schema_filename(cls: type[Event]) -> str:
    return f"{cls.event_type()}.schema.json"


def schema_id(cls: type[Event]) -> str:
    return f"{SCHEMA_BASE_URI}{cls.event_type()}.json"


def event_description(cls: type[Event]) -> str:
    """The class's own docstring; a sentence naming type and subject where it has none."""
    doc = cls.__dict__.get("__doc__")
    if isinstance(doc, str) and doc.strip():
        return inspect.cleandoc(doc)
    return f"Gyre event {cls.event_type()}, published on {subject_address(cls)}."


def event_json_schema(cls: type[Event]) -> dict[str, Any]:
    """A self-contained JSON Schema 2020-12 document for one event type.

    The event's own object is the root (its nested value objects stay in ``$defs``), so a
    validator in any language can check a JSON body published on the event's subject.
    """
    generated = msgspec.json.schema(cls)
    defs: dict[str, Any] = dict(generated.get("$defs", {}))
    ref: str = generated["$ref"]
    root_name = ref.rpartition("/")[2]
    root: dict[str, Any] = dict(defs.pop(root_name))
    if ref in msgspec.json.encode(defs).decode():
        # The event refers to itself: keep the root in $defs so the reference resolves.
        defs[root_name] = dict(root)
    root["title"] = cls.__name__
    root["description"] = event_description(cls)
    document: dict[str, Any] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id(cls),
        **root,
        "x-gyre-type": cls.event_type(),
        "x-gyre-version": event_version(cls),
        "x-gyre-subject": subject_address(cls),
    }
    if defs:
        document["$defs"] = defs
    # Plain JSON values (msgspec leaves tuple defaults as tuples), equal to the file read back.
    plain: dict[str, Any] = msgspec.json.decode(msgspec.json.encode(document))
    return plain


def all_schemas(events: tuple[type[Event], ...] = ALL_EVENTS) -> dict[str, dict[str, Any]]:
    """Every event's schema, keyed by file name (``gyre.ingest.submitted.v1.schema.json``)."""
    return {schema_filename(cls): event_json_schema(cls) for cls in events}
