"""The event contracts: shape of every event, the CloudEvents envelope, and the generated proto/."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import importlib.util
import inspect
import json
import operator
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import jsonschema
import msgspec
import msgspec.inspect as mi
import pytest
import yaml

from gyre_contracts import (
    ALL_EVENTS,
    EVENTS_BY_TYPE,
    DocumentSubmitted,
    EnvelopeError,
    Event,
    GenerationCompleted,
    cloudevent_headers,
    decode_event,
    encode_body,
)
from gyre_contracts.envelope import JSON, MSGPACK
from gyre_contracts.schema import SUBJECT_PARAMETERS, all_schemas, event_json_schema, schema_filename

REPO_ROOT = Path(__file__).resolve().parents[3]
GEN_PROTO = REPO_ROOT / "tools" / "gen_proto.py"
TYPE_PATTERN = re.compile(r"^gyre\.[a-z_.]+\.v\d+$")
WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
# Every event as one tagged union, what a consumer of several event types decodes into.
AnyEvent: Any = functools.reduce(operator.or_, ALL_EVENTS)


@pytest.fixture(scope="module")
def gen_proto() -> Iterator[ModuleType]:
    """tools/gen_proto.py, imported in-process (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_proto", GEN_PROTO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_proto"] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("gen_proto", None)


def _event_id(cls: type[Event]) -> str:
    return cls.__name__


# ---------------------------------------------------------------------------- samples


def _sample_value(t: mi.Type, name: str, full: bool) -> Any:
    """A valid value of type ``t``; the field name makes strings recognisable."""
    if isinstance(t, mi.Metadata):  # a constrained type with a description: the type inside
        return _sample_value(t.type, name, full)
    if isinstance(t, mi.StrType):
        return f"{name}-1"
    if isinstance(t, mi.BoolType):
        return True
    if isinstance(t, mi.IntType):
        return 1
    if isinstance(t, mi.FloatType):
        return 0.5
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.DateTimeType):
        return WHEN
    if isinstance(t, mi.LiteralType):
        return t.values[0]
    if isinstance(t, mi.UnionType):
        return _sample_value(next(u for u in t.types if not isinstance(u, mi.NoneType)), name, full)
    if isinstance(t, mi.VarTupleType):
        return (_sample_value(t.item_type, name, full),)
    if isinstance(t, mi.ListType):
        return [_sample_value(t.item_type, name, full)]
    if isinstance(t, mi.DictType):
        return {"key": _sample_value(t.value_type, name, full)}
    if isinstance(t, mi.AnyType):
        return {"nested": [1, "two"]}
    if isinstance(t, mi.StructType):
        return sample(t.cls, full=full)
    raise TypeError(f"no sample for {t!r} ({name}): extend _sample_value")


def sample(cls: type[Any], *, full: bool = False) -> Any:
    """An instance of ``cls`` with its required fields only, or with every field when ``full``."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    kwargs = {f.name: _sample_value(f.type, f.name, full) for f in info.fields if f.required or full}
    return cls(**kwargs)


# ---------------------------------------------------------------------------- proto/


def test_proto_is_up_to_date(gen_proto: ModuleType) -> None:
    problems = gen_proto.check()
    assert not problems, "proto/ is stale: run `just proto` and commit proto/\n" + "\n".join(problems)


def test_proto_changes_are_backward_compatible(gen_proto: ModuleType) -> None:
    baseline = gen_proto.baseline_schemas("HEAD")
    assert baseline is not None, "proto/schemas is not committed at HEAD: run `just proto` and commit it"
    problems = gen_proto.compatibility_problems(baseline)
    assert not problems, "breaking change to a committed event: add a new version (tag .v2) instead\n" + "\n".join(
        problems
    )


def test_breaking_changes_are_told_apart_from_compatible_ones(gen_proto: ModuleType) -> None:
    old = event_json_schema(GenerationCompleted)

    added_optional = copy.deepcopy(old)
    added_optional["properties"]["language"] = {"type": "string", "default": "en"}
    added_optional["properties"]["answer"]["description"] = "reworded documentation only"
    assert gen_proto.breaking_changes(old, added_optional) == []

    removed = copy.deepcopy(old)
    del removed["properties"]["finish_reason"]
    retyped = copy.deepcopy(old)
    retyped["$defs"]["Usage"]["properties"]["total_tokens"] = {"type": "string"}
    newly_required = copy.deepcopy(old)
    newly_required["properties"]["language"] = {"type": "string"}
    newly_required["required"].append("language")

    assert gen_proto.breaking_changes(old, removed) == ["GenerationCompleted.finish_reason: field removed"]
    assert gen_proto.breaking_changes(old, retyped)[0].startswith(
        "GenerationCompleted/Usage.total_tokens: type changed"
    )
    assert gen_proto.breaking_changes(old, newly_required) == [
        "GenerationCompleted.language: new field is required (give it a default)"
    ]
    assert gen_proto.compatibility_problems({"gyre.gone.v1.schema.json": old}, current={})[0].startswith(
        "gyre.gone.v1.schema.json: event type removed"
    )


def test_compatibility_is_checked_against_the_schemas_committed_in_git(gen_proto: ModuleType, tmp_path: Path) -> None:
    schemas = tmp_path / "proto" / "schemas"
    schemas.mkdir(parents=True)
    old = event_json_schema(DocumentSubmitted)
    old["properties"]["priority"] = {"type": "integer"}  # a field the current contract no longer has
    (schemas / schema_filename(DocumentSubmitted)).write_text(json.dumps(old))
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "baseline"], check=True)

    baseline = gen_proto.baseline_schemas("HEAD", repo=tmp_path)

    assert baseline == {schema_filename(DocumentSubmitted): old}
    assert gen_proto.compatibility_problems(baseline) == [
        "gyre.ingest.submitted.v1.schema.json: DocumentSubmitted.priority: field removed"
    ]
    assert gen_proto.baseline_schemas("no-such-ref", repo=tmp_path) is None


def test_check_reports_stale_missing_and_extra_files_and_write_fixes_them(
    gen_proto: ModuleType, tmp_path: Path
) -> None:
    proto = tmp_path / "proto"
    assert gen_proto.check(proto) == [f"missing: {proto / name}" for name in gen_proto.render()]

    gen_proto.write(proto)
    assert gen_proto.check(proto) == []
    assert gen_proto.main(["--check", "--proto-dir", str(proto)]) == 0

    schema = proto / "schemas" / schema_filename(DocumentSubmitted)
    schema.write_text(schema.read_text() + " ")
    (proto / "asyncapi.yaml").unlink()
    (proto / "schemas" / "gyre.old.v1.schema.json").write_text("{}\n")
    assert gen_proto.check(proto) == [
        f"missing: {proto / 'asyncapi.yaml'}",
        f"stale: {schema}",
        f"extra: {proto / 'schemas' / 'gyre.old.v1.schema.json'}",
    ]
    assert gen_proto.main(["--check", "--proto-dir", str(proto)]) == 1

    gen_proto.write(proto)
    assert gen_proto.check(proto) == []


def test_generated_output_is_deterministic(gen_proto: ModuleType) -> None:
    first = gen_proto.render()
    assert gen_proto.render() == first
    for name, content in first.items():
        assert content.endswith("\n") and not content.endswith("\n\n"), name
        if name.endswith(".json"):
            assert content == json.dumps(json.loads(content), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
def test_every_schema_is_a_valid_2020_12_document_that_names_its_event(cls: type[Event]) -> None:
    schema = all_schemas()[schema_filename(cls)]
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://gyre.dev/schemas/{cls.event_type()}.json"
    assert schema["title"] == cls.__name__
    assert schema["description"]
    assert schema["x-gyre-subject"].startswith(f"gyre.{cls.subject}")
    assert schema["properties"]["type"] == {"enum": [cls.event_type()]}
    assert "type" in schema["required"]


def test_asyncapi_references_resolve_and_carry_every_event(gen_proto: ModuleType) -> None:
    doc = yaml.safe_load((REPO_ROOT / "proto" / "asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"

    def resolve(ref: str) -> Any:
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[unquote(part).replace("~1", "/").replace("~0", "~")]
        return node

    carried: set[str] = set()
    for message in doc["components"]["messages"].values():
        assert resolve(message["headers"]["$ref"])["properties"]["ce-type"]
        payload = resolve(message["payload"]["$ref"])
        variants = payload.get("anyOf", [payload])
        carried |= {tag for variant in variants for tag in variant["properties"]["type"]["enum"]}
    for channel in doc["channels"].values():
        for ref in channel["messages"].values():
            resolve(ref["$ref"])
    for op_id, operation in doc["operations"].items():
        assert operation["action"] in ("send", "receive"), op_id
        channel = resolve(operation["channel"]["$ref"])
        for ref in operation["messages"]:
            assert resolve(ref["$ref"]) in channel["messages"].values(), op_id
    # Every event some service sends or receives; request/reply answers travel on inboxes.
    replies = {"gyre.retrieve.result.v1", "gyre.embeddings.result.v1", "gyre.generate.load.v1"}
    assert replies <= set(EVENTS_BY_TYPE)
    assert set(EVENTS_BY_TYPE) - replies <= carried
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {"gyre.generate.stream.*", "gyre.dlq.ingest", "gyre.retrieve", "gyre.ingest.submitted.*"} <= addresses


def test_every_durable_consumer_of_the_topology_is_a_channel_of_the_document(gen_proto: ModuleType) -> None:
    from gyre_runtime.bus import topology

    doc = gen_proto.build_asyncapi()
    for consumer in topology.CONSUMERS:
        channel = doc["channels"][f"{consumer.service}:{consumer.durable}"]
        assert channel["address"] == f"gyre.{consumer.filter_subjects[0]}"


# ---------------------------------------------------------------------------- events


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
def test_every_event_is_frozen_tagged_and_versioned(cls: type[Event]) -> None:
    config = cls.__struct_config__
    assert issubclass(cls, Event)
    assert config.frozen
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in inspect.signature(cls).parameters.values())
    assert config.tag_field == "type"
    assert isinstance(config.tag, str) and TYPE_PATTERN.match(config.tag), config.tag
    assert cls.subject, f"{cls.__name__} has no subject"
    # The type's area (gyre.<area>....) is the subject's first token.
    assert config.tag.split(".")[1] == cls.subject.split(".")[0]
    with pytest.raises(AttributeError):
        sample(cls).tenant = "other"


def _all_subclasses(cls: type[Event]) -> set[type[Event]]:
    found: set[type[Event]] = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_catalog_lists_every_event_once() -> None:
    assert len(EVENTS_BY_TYPE) == len(ALL_EVENTS), "two events share a type"
    # Private classes (``_AboutARebuild``) are shared field prefixes, never sent.
    contracts = {c for c in _all_subclasses(Event) if c.__module__.startswith("gyre_contracts")}
    missing = {c.__name__ for c in contracts if not c.__name__.startswith("_")}
    missing -= {c.__name__ for c in ALL_EVENTS}
    assert not missing, f"add to gyre_contracts.catalog.ALL_EVENTS: {sorted(missing)}"


@pytest.mark.parametrize("subject, field", sorted(SUBJECT_PARAMETERS.items()))
def test_parameterised_subjects_end_with_a_field_of_their_event(subject: str, field: str) -> None:
    events = [cls for cls in ALL_EVENTS if cls.subject == subject]
    assert events, f"no event on {subject}"
    for cls in events:
        assert field in cls.__struct_fields__


@pytest.mark.parametrize("full", [False, True], ids=["required-fields", "all-fields"])
@pytest.mark.parametrize("content_type", [JSON, MSGPACK])
@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
def test_every_event_round_trips_through_json_and_msgpack(cls: type[Event], content_type: str, full: bool) -> None:
    event = sample(cls, full=full)
    headers = cloudevent_headers(event, source="gyre/test", content_type=content_type)
    body = encode_body(event, content_type)

    assert decode_event(body, cls, headers) == event
    # A consumer of several types decodes through the tagged union and gets the right class.
    decoded: Event = decode_event(body, AnyEvent, headers)
    assert type(decoded) is cls and decoded == event


@pytest.mark.parametrize("cls", ALL_EVENTS, ids=_event_id)
def test_every_encoded_event_validates_against_its_published_schema(cls: type[Event]) -> None:
    validator = jsonschema.Draft202012Validator(all_schemas()[schema_filename(cls)])
    for full in (False, True):
        validator.validate(json.loads(encode_body(sample(cls, full=full))))


# ---------------------------------------------------------------------------- envelope


def test_cloudevent_headers_use_ce_id_as_nats_msg_id(gen_proto: ModuleType) -> None:
    event = DocumentSubmitted(document_id="doc-7", tenant="acme", text="hello")
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    headers = cloudevent_headers(event, source="gyre/gateway", traceparent=traceparent, time=WHEN)

    assert headers["Nats-Msg-Id"] == headers["ce-id"] != ""
    assert headers == {
        "ce-specversion": "1.0",
        "ce-id": headers["ce-id"],
        "ce-source": "gyre/gateway",
        "ce-type": "gyre.ingest.submitted.v1",
        "ce-time": WHEN.isoformat(),
        "ce-subject": "doc-7",
        "ce-tenant": "acme",
        "ce-traceparent": traceparent,
        "content-type": JSON,
        "Nats-Msg-Id": headers["ce-id"],
    }
    jsonschema.Draft202012Validator(gen_proto.CLOUDEVENT_HEADERS).validate(headers)

    # A retry passes the same id, so JetStream drops the duplicate; a new publish gets a new one.
    retried = cloudevent_headers(event, source="gyre/gateway", event_id="publish-1")
    assert retried["ce-id"] == retried["Nats-Msg-Id"] == "publish-1"
    assert cloudevent_headers(event, source="s")["ce-id"] != cloudevent_headers(event, source="s")["ce-id"]
    assert "ce-traceparent" not in retried


GARBAGE_CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "not-json": (b"\x00not json{", {}),
    "json-but-not-an-object": (b"[1, 2, 3]", {}),
    "another-events-body": (encode_body(sample(GenerationCompleted)), {}),
    "missing-required-field": (b'{"type": "gyre.ingest.submitted.v1", "text": "no id"}', {}),
    "wrong-field-type": (b'{"type": "gyre.ingest.submitted.v1", "document_id": 42}', {}),
    "json-body-labelled-msgpack": (encode_body(sample(DocumentSubmitted)), {"content-type": MSGPACK}),
    "ce-type-header-disagrees-with-body": (
        encode_body(sample(DocumentSubmitted)),
        {"ce-type": "gyre.ingest.accepted.v1", "content-type": JSON},
    ),
}


@pytest.mark.parametrize("case", sorted(GARBAGE_CASES))
def test_decode_rejects_mismatched_ce_type_and_garbage(case: str) -> None:
    body, headers = GARBAGE_CASES[case]
    with pytest.raises(EnvelopeError):
        decode_event(body, DocumentSubmitted, headers)


def test_decode_rejects_a_ce_type_that_disagrees_with_the_union_member() -> None:
    body = encode_body(sample(GenerationCompleted))
    with pytest.raises(EnvelopeError, match="does not match"):
        decode_event(body, AnyEvent, {"ce-type": "gyre.generate.failed.v1"})


# ---------------------------------------------------------------------------- other languages

EXTERNAL_DOCUMENT: dict[str, Any] = {
    "type": "gyre.ingest.submitted.v1",
    "tenant": "acme",
    "document_id": "handbook-2026",
    "text": "Employees may work remotely up to three days a week.",
    "content_type": "text/plain",
    "title": "Handbook",
    "metadata": {"department": "hr", "pages": 12},
    "source": "sharepoint-sync",
    "submitted_at": "2026-01-02T03:04:05Z",
}


def test_schema_validates_an_external_publishers_json() -> None:
    """What a Go or Node publisher writes by hand is valid by the schema and decodes the same."""
    schema = json.loads((REPO_ROOT / "proto" / "schemas" / "gyre.ingest.submitted.v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    validator.validate(EXTERNAL_DOCUMENT)

    headers = {
        "ce-specversion": "1.0",
        "ce-id": "0f1e2d3c",
        "ce-source": "sharepoint-sync",
        "ce-type": "gyre.ingest.submitted.v1",
        "content-type": "application/json",
        "Nats-Msg-Id": "0f1e2d3c",
    }
    event: DocumentSubmitted = decode_event(json.dumps(EXTERNAL_DOCUMENT).encode(), DocumentSubmitted, headers)
    assert event == DocumentSubmitted(
        tenant="acme",
        document_id="handbook-2026",
        text="Employees may work remotely up to three days a week.",
        title="Handbook",
        metadata={"department": "hr", "pages": 12},
        source="sharepoint-sync",
        submitted_at=WHEN,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"document_id": None},
        {"document_id": 42},
        {"metadata": ["not", "an", "object"]},
        {"type": "gyre.ingest.submitted.v2"},
        {"type": None},
    ],
    ids=["missing-document-id", "numeric-document-id", "list-metadata", "unknown-version", "missing-type"],
)
def test_schema_and_decoder_both_reject_a_malformed_external_json(change: dict[str, Any]) -> None:
    document = {**EXTERNAL_DOCUMENT, **change}
    document = {k: v for k, v in document.items() if v is not None}
    schema = all_schemas()[schema_filename(DocumentSubmitted)]

    assert not jsonschema.Draft202012Validator(schema).is_valid(document)
    with pytest.raises(EnvelopeError):
        decode_event(json.dumps(document).encode(), AnyEvent)


def test_schema_generation_needs_only_msgspec() -> None:
    """Other systems install gyre-contracts alone: it must not pull in yaml, jsonschema, nats..."""
    source = (REPO_ROOT / "libs" / "gyre-contracts" / "gyre_contracts" / "schema.py").read_text()
    imports = {m.split()[1].split(".")[0] for m in re.findall(r"^(?:from|import) \S+", source, re.MULTILINE)}
    assert imports <= {"__future__", "inspect", "typing", "msgspec", "gyre_contracts"}
    # Plain JSON data (lists, not tuples): what is compared with schemas read back from files.
    assert msgspec.json.decode(msgspec.json.encode(all_schemas())) == all_schemas()
