"""Event types as FastStream sees them: handler annotations that carry the contracts' JSON Schema.

FastStream builds a handler's AsyncAPI payload from its annotations with pydantic, which cannot read
a msgspec Struct. ``wire(T)`` annotates ``T`` with the schema msgspec generates for it (nested
definitions inlined, so the document has no dangling references) and a validator that passes the
value through untouched: Gyre decodes events itself (:func:`gyre_contracts.decode_event`, with the
CloudEvents headers), so FastStream never converts a payload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Union

import msgspec
from pydantic import PlainValidator, WithJsonSchema

from gyre_contracts import Event


@dataclass(frozen=True)
class Undecodable:
    """What a handler gets instead of an event when the payload could not be decoded (and why)."""

    error: str


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline(definitions[node["$ref"].rsplit("/", 1)[1]], definitions)
        return {key: _inline(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, definitions) for value in node]
    return node


def json_schema(types: tuple[type[Event], ...]) -> dict[str, Any]:
    """One JSON Schema for a message that is one of ``types``, with every definition inlined."""
    target: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
    full = msgspec.json.schema(target)
    definitions = full.pop("$defs", {})
    schema: dict[str, Any] = _inline(full, definitions)
    return schema


def _passthrough(value: Any) -> Any:
    return value


def wire(types: tuple[type[Event], ...]) -> Any:
    """The annotation for a handler parameter carrying one of ``types`` (or :class:`Undecodable`)."""
    target: Any = types[0] if len(types) == 1 else Union[types]  # noqa: UP007
    return Annotated[target, PlainValidator(_passthrough), WithJsonSchema(json_schema(types))]
