"""The model hub's refs, keys and records, without a server."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import msgspec
import pytest
from nats.js import api as js_api

from gyre_contracts import ModelPromoted, decode_event, encode_body
from gyre_runtime.hub import HubError, Lineage, ModelVersion, NotFound, parse_alias_ref, parse_ref, role_of
from gyre_runtime.hub.artifacts import holds_version, object_sha256
from gyre_runtime.hub.records import (
    AliasRecord,
    alias_decoder,
    history_key,
    object_prefix,
    version_decoder,
    version_key,
    versions_pattern,
)
from gyre_runtime.models.manifest import MANIFEST_NAME, FileEntry, load_manifest
from tests.support.model_folders import write_model_folder


def version_of(folder: Path, weights: bytes = b"weights of a tiny model") -> ModelVersion:
    """The version a push of a new fake model folder at ``folder`` records."""
    write_model_folder(folder, weights=weights)
    manifest = load_manifest(folder)
    data = (folder / MANIFEST_NAME).read_bytes()
    return ModelVersion(
        id=manifest.model_version, name=manifest.name, role=role_of(manifest), manifest=manifest,
        manifest_file=FileEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data)),
        artifacts={rel: object_prefix(manifest) + rel for rel in [*manifest.files, MANIFEST_NAME]},
        pushed_by="tester",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("generator@production", (None, None, "generator", "production")),
        (" embedder@candidate ", (None, None, "embedder", "candidate")),
        ("smollm2-135m-instruct:1:0123456789ab", ("smollm2-135m-instruct", "smollm2-135m-instruct:1:0123456789ab",
                                                 None, None)),
        ("smollm2-135m-instruct", ("smollm2-135m-instruct", None, None, None)),
    ],
)
def test_a_ref_is_an_alias_a_version_id_or_a_name(text: str, expected: tuple[str | None, ...]) -> None:
    ref = parse_ref(text)
    assert (ref.name, ref.version_id, ref.role, ref.alias) == expected


@pytest.mark.parametrize("text", ["", "a:b", "a::c", "a:b:c:d", "generator@", "generator@bad alias"])
def test_a_malformed_ref_is_refused_saying_what_a_ref_looks_like(text: str) -> None:
    with pytest.raises(HubError, match=r"ref|alias"):
        parse_ref(text)


def test_an_unknown_role_is_not_found_naming_the_roles() -> None:
    with pytest.raises(NotFound, match="roles are embedder, generator"):
        parse_ref("reranker@production")
    with pytest.raises(NotFound, match="roles are embedder, generator"):
        parse_alias_ref("ranker@production")


def test_promote_and_history_take_role_at_alias_only() -> None:
    assert parse_alias_ref("generator@candidate") == ("generator", "candidate")
    with pytest.raises(HubError, match="expected ROLE@ALIAS"):
        parse_alias_ref("generator")


def test_the_role_comes_from_the_manifest_kind(tmp_path: Path) -> None:
    assert role_of(write_model_folder(tmp_path / "g")) == "generator"
    assert role_of(write_model_folder(tmp_path / "e", kind="embedding")) == "embedder"
    with pytest.raises(HubError, match="kind 'reranking'"):
        role_of(msgspec.structs.replace(write_model_folder(tmp_path / "r"), kind="reranking"))


def test_keys_keep_names_and_ids_inside_one_key_token_and_history_sorts_by_move() -> None:
    key = version_key("odd.name", "odd.name:1:0123456789ab")
    assert key.count(".") == 2 and key.startswith("version.")
    assert versions_pattern("odd.name") == key.rpartition(".")[0] + ".*"
    keys = [history_key("generator", "production", n) for n in (10, 2, 1)]
    assert sorted(keys) == [keys[2], keys[1], keys[0]]


def test_objects_are_named_by_the_version_id(tmp_path: Path) -> None:
    manifest = write_model_folder(tmp_path)
    name, version, hash12 = manifest.model_version.split(":")
    assert object_prefix(manifest) == f"{name}/{version}/{hash12}/"


def test_a_version_round_trips_and_lists_its_manifest_among_its_files(tmp_path: Path) -> None:
    version = version_of(tmp_path)
    decoded = version_decoder.decode(msgspec.json.encode(version))
    assert decoded == version and decoded.lineage == Lineage()
    assert set(decoded.expected_files()) == {"model.onnx", "tokenizer.json", "extra/blob.bin", MANIFEST_NAME}
    assert decoded.digest == version.manifest.digest


def test_an_alias_record_written_without_the_later_fields_decodes_with_their_defaults() -> None:
    old = b'{"role":"generator","alias":"production","version":"g:1:0123456789ab","previous":null,' \
          b'"moved_by":"ops","reason":"first","moved_at":"2026-12-01T00:00:00Z"}'
    record = alias_decoder.decode(old)
    assert (record.sequence, record.rollback, record.evaluation, record.ref) == (1, False, None, "generator@production")
    assert isinstance(record, AliasRecord)


def test_a_model_promoted_event_from_before_the_hub_still_decodes() -> None:
    old = ModelPromoted(name="g", version="1")
    fields = msgspec.json.decode(encode_body(old))
    for added in ("role", "previous", "reason", "by", "evaluation", "rollback"):
        fields.pop(added)
    decoded = decode_event(msgspec.json.encode(fields), ModelPromoted)
    assert (decoded.alias, decoded.role, decoded.previous, decoded.rollback) == ("production", "", None, False)


def test_the_object_store_digest_reads_as_hex_sha256() -> None:
    sha = hashlib.sha256(b"abc")
    info = js_api.ObjectInfo(name="x", bucket="b", nuid="n", digest="SHA-256=" + base64.urlsafe_b64encode(
        sha.digest()).decode())
    assert object_sha256(info) == sha.hexdigest()
    assert object_sha256(js_api.ObjectInfo(name="x", bucket="b", nuid="n", digest="MD5=abc")) is None


def test_a_folder_holds_a_version_only_with_its_manifest_and_files_at_their_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    version = version_of(folder)
    assert holds_version(folder, version)
    assert not holds_version(tmp_path / "missing", version)
    other = version_of(tmp_path / "other", weights=b"other weights")
    assert not holds_version(folder, other)
    (folder / "tokenizer.json").write_bytes(b"{}")
    assert not holds_version(folder, version)
