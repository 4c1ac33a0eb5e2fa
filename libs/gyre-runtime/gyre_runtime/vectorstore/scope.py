"""Which points a call may touch: plain conditions, and the Qdrant filter they make in either Qdrant library."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from gyre_runtime.vectorstore.base import (
    DOCUMENT_FIELD,
    METADATA_FIELD,
    TENANT_FIELD,
    VERSION_FIELD,
    InvalidSearch,
    metadata_key_path,
)

FilterValue = str | int | list[str] | list[int]


class Match(NamedTuple):
    """The payload field ``key`` equals ``value``, or any of its items when it is a list."""

    key: str
    value: FilterValue


class Below(NamedTuple):
    """The payload field ``key`` (a version) is less than ``bound``."""

    key: str
    bound: int


Condition = Match | Below


def scope(
    tenant: str,
    document_id: str | None = None,
    metadata_filter: Mapping[str, Any] | None = None,
    *,
    before_version: int | None = None,
) -> list[Condition]:
    """Every condition a point must meet: always the tenant's, so no call reaches across tenants."""
    conditions: list[Condition] = [Match(TENANT_FIELD, tenant)]
    if document_id is not None:
        conditions.append(Match(DOCUMENT_FIELD, document_id))
    if before_version is not None:
        conditions.append(Below(VERSION_FIELD, before_version))
    conditions.extend(metadata_conditions(metadata_filter))
    return conditions


def qdrant_filter(conditions: Sequence[Condition], library: Any, range_class: Any) -> Any:
    """The conditions as a filter of ``library``: ``qdrant_edge`` or ``qdrant_client.models``.

    Both name their filter classes alike (``Filter``, ``FieldCondition``, ``MatchAny``,
    ``MatchValue``); only the range class differs (``RangeFloat``, ``Range``).
    """
    must: list[Any] = []
    for c in conditions:
        if isinstance(c, Below):
            must.append(library.FieldCondition(key=c.key, range=range_class(lt=c.bound)))
        elif isinstance(c.value, list):
            must.append(library.FieldCondition(key=c.key, match=library.MatchAny(any=c.value)))
        else:
            must.append(library.FieldCondition(key=c.key, match=library.MatchValue(value=c.value)))
    return library.Filter(must=must)


def metadata_conditions(metadata_filter: Mapping[str, Any] | None) -> list[Match]:
    """The conditions of a metadata filter, checked: the same rules in every adapter.

    A value is a string or an integer (equality), or a non-empty list of strings or of integers
    (any of). Booleans are refused: Qdrant Edge 0.9 turns a boolean match into the integer 1 or 0,
    which matches no boolean, so such a filter would silently find nothing there.
    """
    conditions: list[Match] = []
    for key, value in (metadata_filter or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidSearch(f"filter keys must be non-empty strings, got {key!r}")
        path = f"{METADATA_FIELD}.{metadata_key_path(key)}"
        if isinstance(value, str | int) and not isinstance(value, bool):
            conditions.append(Match(path, value))
        elif isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
            conditions.append(Match(path, [str(v) for v in value]))
        elif (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            conditions.append(Match(path, [int(v) for v in value]))
        else:
            raise InvalidSearch(
                f"filter {key!r}: a value must be a string, an integer, or a non-empty list of strings "
                f"or of integers (any of), got {value!r} (store flags as strings to filter on them)"
            )
    return conditions
