"""The permission table: complete, derived from the topology, and rendered without any opening."""

from __future__ import annotations

import pytest

from gyre_runtime.bus.credentials import Credential, render_authorization
from gyre_runtime.bus.permissions import (
    SERVICE_ACCESS,
    SERVICES,
    IdentityError,
    Naming,
    permissions_for,
    publisher_permissions,
    service_permissions,
)
from gyre_runtime.bus.topology import BUCKETS, CONSUMERS, OBJECT_STORES, STREAMS


def test_every_service_has_a_row_and_every_bucket_it_names_exists() -> None:
    """A typo in the table would lock a service out of what it needs."""
    assert set(SERVICE_ACCESS) == set(SERVICES)
    buckets = {spec.name for spec in BUCKETS}
    stores = {spec.name for spec in OBJECT_STORES}
    streams = {spec.name for spec in STREAMS}
    for access in SERVICE_ACCESS.values():
        assert {*access.reads, *access.writes, *(b for b, _ in access.writes_keys)} <= buckets, access.service
        assert {*access.reads_objects, *access.writes_objects} <= stores, access.service
        assert {*access.replays, *access.inspects, *access.deletes_from} <= streams, access.service


@pytest.mark.parametrize("spec", CONSUMERS, ids=lambda spec: spec.durable)
def test_a_service_may_fetch_and_acknowledge_its_own_consumers_and_create_none(spec: object) -> None:
    from gyre_runtime.bus.topology import ConsumerSpec

    assert isinstance(spec, ConsumerSpec)
    allowed = service_permissions(spec.service).publish
    assert f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}" in allowed
    assert f"$JS.ACK.{spec.stream}.{spec.durable}.>" in allowed
    assert not any(s.startswith("$JS.API.CONSUMER.DURABLE.CREATE") for s in allowed)
    if spec.stream not in SERVICE_ACCESS[spec.service].replays:  # embed replays GYRE_EMBED with consumers of its own
        assert not any(s.startswith(f"$JS.API.CONSUMER.CREATE.{spec.stream}") for s in allowed)
    for other in SERVICES:
        if other != spec.service:
            assert f"$JS.API.CONSUMER.MSG.NEXT.{spec.stream}.{spec.durable}" not in service_permissions(other).publish


def test_no_service_may_manage_streams_or_read_event_streams_directly() -> None:
    for service in SERVICES:
        for subject in service_permissions(service).publish:
            assert not subject.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.UPDATE", "$JS.API.STREAM.DELETE"))
            assert not subject.startswith(("$JS.API.DIRECT.GET.GYRE_", "$JS.API.STREAM.MSG.GET.GYRE_")), subject
            assert subject not in (">", "gyre.>", "$JS.API.>")


def test_only_the_gateway_reads_the_api_keys_and_only_responders_may_reply() -> None:
    readers = {s for s in SERVICES if "$JS.API.STREAM.MSG.GET.KV_gyre_api_keys" in service_permissions(s).publish}
    responders = {s for s in SERVICES if service_permissions(s).allow_responses}
    assert readers == {"gateway"}
    assert responders == {"embed", "generate"}
    askers = {s for s in SERVICES if "gyre.retrieve" in service_permissions(s).publish}
    assert askers == {"gateway", "generate", "evaluate"}


def test_services_register_their_models_but_only_the_operator_moves_the_model_hub() -> None:
    writers = {s for s in SERVICES if "$KV.gyre_models.served.>" in service_permissions(s).publish}
    assert writers == {"embed", "generate"}
    for service in SERVICES:
        allowed = service_permissions(service).publish
        assert "$KV.gyre_models.>" not in allowed and "gyre.improve.model_promoted" not in allowed, service
        assert not any(s.startswith("$O.gyre_model_artifacts") for s in allowed), service
    for service in ("embed", "generate"):
        assert "$JS.API.DIRECT.GET.OBJ_gyre_model_artifacts.>" in service_permissions(service).publish


def test_each_identity_reads_replies_only_in_its_own_inbox() -> None:
    for service in SERVICES:
        inboxes = [s for s in service_permissions(service).subscribe if s.startswith("_INBOX")]
        assert inboxes == [f"_INBOX_{service}.>"]


def test_a_publisher_may_publish_one_tenants_submissions_and_nothing_else() -> None:
    allowed = publisher_permissions("acme", Naming("corp"))
    assert allowed.publish == ("corp.ingest.submitted.acme",)
    assert allowed.subscribe == ("_INBOX_publisher-acme.>",)
    assert not allowed.allow_responses


@pytest.mark.parametrize("tenant", ["a.b", "*", ">", "", "x" * 65, "a b", "tenant/1"])
def test_a_tenant_that_is_not_one_plain_subject_token_gets_no_credential(tenant: str) -> None:
    with pytest.raises(IdentityError):
        permissions_for(f"publisher-{tenant}")


def test_the_rendered_block_has_hashes_only_and_no_anonymous_user() -> None:
    rendered = render_authorization({"admin": Credential("admin", "plain-secret", "$2b$11$hash")})
    assert "plain-secret" not in rendered and "$2b$11$hash" in rendered
    assert "no_auth_user" not in rendered
    with pytest.raises(IdentityError):
        render_authorization({})


def test_a_credential_in_the_url_is_sent_as_options_so_discovered_cluster_nodes_get_it_too() -> None:
    """A cluster announces its other nodes without credentials; a reconnect to one must still log in."""
    from gyre_runtime.bus.connection import connect_options
    from gyre_runtime.config import load_settings

    settings = load_settings({}, nats_url="nats://admin:s3cret@127.0.0.1:4222,nats://127.0.0.1:4223")
    options = connect_options(settings)
    assert options["servers"] == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
    assert (options["user"], options["password"]) == ("admin", "s3cret")
