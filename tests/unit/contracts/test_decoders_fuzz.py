"""Every event decoder, fuzzed: whatever bytes arrive, decode_event returns the event or raises EnvelopeError.

An EnvelopeError is what the consumer dead-letters (with its message as the reason); anything else
would escape the consumer's policy. Three kinds of input for each event type in the catalogue:
random bytes, random JSON, and the event's own shape filled with random values (wrong types,
out-of-range numbers, over-long and control-character strings, deep nesting). An event that does
decode must encode and decode again to itself.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import re
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre_contracts import ALL_EVENTS, DocumentSubmitted, EnvelopeError, Event, decode_event, encode_body
from gyre_contracts.envelope import JSON, MSGPACK

AnyEvent: Any = functools.reduce(operator.or_, ALL_EVENTS)
# Bounded work per test (no timing assertion): a few dozen examples per event type and input kind.
FUZZ = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


def strings(t: mi.StrType) -> st.SearchStrategy[str]:
    """Any text, and text right at and past the type's length limits."""
    kinds = [st.text(max_size=30), st.sampled_from(["", "\n", "a\n", "a.b", "*", ">", "x y", "\x00", "é"])]
    if t.max_length is not None:
        kinds.append(st.integers(t.max_length - 1, t.max_length + 2).map(lambda n: "a" * max(n, 0)))
    return st.one_of(kinds)


def values_for(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of roughly type ``t``, often wrong: what a careless or hostile publisher sends."""
    wrong = json_values
    if isinstance(t, mi.Metadata):
        return values_for(t.type)
    if isinstance(t, mi.StrType):
        return strings(t) | wrong
    if isinstance(t, mi.IntType):
        return st.integers() | st.sampled_from([-1, 0, 1, 2**63, -(2**63) - 1, 10**30]) | wrong
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=True, allow_infinity=True) | wrong
    if isinstance(t, mi.BoolType | mi.NoneType):
        return st.booleans() | st.none() | wrong
    if isinstance(t, mi.DateTimeType):
        return st.datetimes(timezones=st.just(dt.UTC)).map(dt.datetime.isoformat) | wrong
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(list(t.values)) | wrong
    if isinstance(t, mi.UnionType):
        return st.one_of([values_for(u) for u in t.types])
    if isinstance(t, mi.VarTupleType | mi.ListType):
        return st.lists(values_for(t.item_type), max_size=4) | wrong
    if isinstance(t, mi.DictType):
        return st.dictionaries(st.text(max_size=12), values_for(t.value_type), max_size=4) | deep_json | wrong
    if isinstance(t, mi.AnyType):
        return wrong | deep_json
    if isinstance(t, mi.StructType):
        return shaped_like(t.cls)
    raise TypeError(f"no fuzz values for {t!r}: extend values_for")


# Nesting deeper than any recursive decoder follows (the reproduction: a RecursionError escaped decode_event).
# No Python encoder writes such depths, so a marker string stands in for it until the bytes are made.
DEEP_MARKER = "\x00deep-{}\x00"
deep_json = st.integers(1, 6000).map(DEEP_MARKER.format)
JSON_MARKER = re.compile(r'"\\u0000deep-(\d+)\\u0000"')
MSGPACK_MARKER = re.compile(rb"[\xa0-\xbf]\x00deep-(\d+)\x00")


@functools.cache
def shaped_like(cls: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with ``cls``'s fields (each present or not), random values, and its tag when it has one."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    fields = {f.encode_name: st.one_of(st.nothing(), values_for(f.type)) for f in info.fields}
    tag = cls.__struct_config__.tag
    required = {"type": st.just(tag)} if isinstance(tag, str) else {}
    return st.fixed_dictionaries(required, optional=fields)


def to_json(value: Any) -> bytes:
    """Standard-library JSON (NaN and Infinity written as JS does: not JSON, which the decoder must refuse)."""
    text = json.dumps(value, allow_nan=True)
    return JSON_MARKER.sub(lambda m: '{"a":' * int(m[1]) + "{}" + "}" * int(m[1]), text).encode()


def to_msgpack(value: Any) -> bytes | None:
    """MessagePack bytes, or None for a value it cannot hold (integers past 64 bits)."""
    try:
        data = msgspec.msgpack.encode(value)
    except OverflowError:
        return None
    # A one-entry map {"a": ...} per level, an empty map at the bottom.
    return MSGPACK_MARKER.sub(lambda m: b"\x81\xa1a" * int(m[1]) + b"\x80", data)


def decodes_or_refuses(body: bytes, cls: Any, headers: dict[str, str] | None = None) -> None:
    try:
        event = decode_event(body, cls, headers)
    except EnvelopeError:
        return
    assert isinstance(event, Event)
    content_type = (headers or {}).get("content-type", JSON)
    assert decode_event(encode_body(event, content_type), type(event), headers) == event


def _event_id(cls: type[Event]) -> str:
    return cls.__name__


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
@FUZZ
@given(data=st.binary(max_size=200), content_type=st.sampled_from([JSON, MSGPACK]))
def test_random_bytes_decode_to_an_event_or_an_envelope_error(cls: type[Event], data: bytes, content_type: str) -> None:
    decodes_or_refuses(data, cls, {"content-type": content_type})


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
@FUZZ
@given(value=json_values | deep_json)
def test_random_json_decodes_to_an_event_or_an_envelope_error(cls: type[Event], value: Any) -> None:
    decodes_or_refuses(to_json(value), cls)
    decodes_or_refuses(to_json(value), AnyEvent)


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
@FUZZ
@given(data=st.data())
def test_an_events_shape_with_random_values_decodes_or_is_refused(cls: type[Event], data: st.DataObject) -> None:
    body = data.draw(shaped_like(cls))
    decodes_or_refuses(to_json(body), cls)
    decodes_or_refuses(to_json(body), AnyEvent, {"ce-type": cls.event_type()})
    packed = to_msgpack(body)
    if packed is not None:
        decodes_or_refuses(packed, cls, {"content-type": MSGPACK})


@pytest.mark.parametrize("content_type", [JSON, MSGPACK])
def test_a_body_nested_ten_thousand_deep_is_an_envelope_error(content_type: str) -> None:
    """The plain reproduction of what the fuzzing finds: msgspec's RecursionError escaped decode_event."""
    body = {"type": DocumentSubmitted.event_type(), "document_id": "d", "metadata": DEEP_MARKER.format(10_000)}
    data = to_json(body) if content_type == JSON else to_msgpack(body)
    assert data is not None
    with pytest.raises(EnvelopeError, match="nested too deeply"):
        decode_event(data, DocumentSubmitted, {"content-type": content_type})
