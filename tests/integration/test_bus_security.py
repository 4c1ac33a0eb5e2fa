"""The bus is closed: every client has its own credential and may do only what its part needs.

A real nats-server runs with the authorization block Gyre renders (gyre_runtime.bus.credentials and
.permissions); each refusal is the server's own ("permissions violation for publish to ..."), and
what was refused did not happen (nothing stored, nothing delivered, nothing answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import msgspec
import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from gyre_cli.stack import LocalStack
from gyre_contracts import (
    DeadLetter,
    DocumentAccepted,
    DocumentSubmitted,
    RetrieveRequest,
    cloudevent_headers,
    decode_event,
    encode_body,
)
from gyre_ingest.app import create_app as create_ingest
from gyre_runtime.bus import credentials as bus_credentials
from gyre_runtime.bus.connection import Bus, connect, connect_options, declare_topology
from gyre_runtime.bus.permissions import ADMIN, SERVICES, inbox_prefix, publisher_identity
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.hub import ModelHub
from gyre_runtime.models.manifest import verify_manifest
from gyre_runtime.state.api_keys import ApiKeyStore
from tests.support.model_folders import write_model_folder
from tests.support.models import EMBEDDER, built_models
from tests.support.nats_server import NatsServer
from tests.support.services import running_app

WAIT_S = 30.0  # upper bound of any single wait for something that must happen
REFUSED_S = 1.0  # how long a request the server refused is left to (not) be answered


class Secured:
    """A nats-server with Gyre's users and permissions, the credentials' folder, and the admin's connection."""

    def __init__(self, server: NatsServer, directory: Path, data_dir: Path, admin: Bus) -> None:
        self.server, self.directory, self.data_dir, self.admin = server, directory, data_dir, admin

    def settings(self, identity: str, **overrides: object) -> Settings:
        """What a process of ``identity`` runs with: its own credential, the topology left to the admin."""
        return load_settings(
            {},
            nats_url=self.server.url,
            data_dir=str(self.data_dir),
            nats_credentials_file=str(bus_credentials.credential_path(self.directory, identity)),
            declare_topology=False,
            **overrides,
        )

    async def client(self, identity: str) -> Client:
        return await Client.open(self.settings(identity))


class Client:
    """One identity's raw connection that keeps every error the server sends it."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._changed = asyncio.Event()
        self.nc: NATS

    @classmethod
    async def open(cls, settings: Settings) -> Client:
        client = cls()

        async def on_error(exc: Exception) -> None:
            client.errors.append(str(exc))
            client._changed.set()

        client.nc = await nats.connect(
            **connect_options(settings), error_cb=on_error, allow_reconnect=False, connect_timeout=WAIT_S
        )
        return client

    async def refusal(self, action: str, subject: str) -> str:
        """Wait for the server's 'permissions violation for <action> to "<subject>"'."""
        wanted = f'permissions violation for {action} to "{subject}"'

        async def seen() -> str:
            while True:
                for error in self.errors:
                    if wanted.lower() in error.lower():
                        return error
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(seen(), WAIT_S)
        except TimeoutError:
            raise AssertionError(f"no refusal {wanted!r}; the server said: {self.errors}") from None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.nc.close()


@pytest.fixture(scope="module")
def credentials_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("credentials")
    bus_credentials.ensure_stack_credentials(directory)
    bus_credentials.add_publisher(directory, "tenant-a")
    bus_credentials.add_publisher(directory, "tenant-b")
    return directory


@pytest.fixture(scope="module")
def secured_server(credentials_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    config = tmp_path_factory.mktemp("nats") / "nats-server.conf"
    config.write_text(bus_credentials.render_authorization(bus_credentials.known_credentials(credentials_dir)))
    with NatsServer(config_file=config) as server:
        yield server


@pytest.fixture(scope="module")
async def secured(
    secured_server: NatsServer, credentials_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Secured]:
    data_dir = tmp_path_factory.mktemp("data")
    admin_settings = load_settings(
        {}, nats_url=secured_server.url, data_dir=str(data_dir),
        nats_credentials_file=str(bus_credentials.credential_path(credentials_dir, ADMIN)),
    )
    admin = await connect(admin_settings, name="gyre-test-admin", patient=False)
    await declare_topology(admin)
    yield Secured(secured_server, credentials_dir, data_dir, admin)
    await admin.close()


@contextlib.asynccontextmanager
async def client_of(secured: Secured, identity: str) -> AsyncIterator[Client]:
    client = await secured.client(identity)
    try:
        yield client
    finally:
        await client.close()


def submission(tenant: str, document_id: str, text: str = "A document about the bus.") -> DocumentSubmitted:
    return DocumentSubmitted(tenant=tenant, document_id=document_id, text=text, source="crm-exporter")


def headers_of(event: DocumentSubmitted) -> dict[str, str]:
    return cloudevent_headers(event, source="crm/exporter")


async def next_accepted(subscription: Subscription, document_id: str) -> DocumentAccepted:
    """The DocumentAccepted of ``document_id`` (the module's server also carries other tests' documents)."""
    while True:
        event = decode_event((await subscription.next_msg(timeout=WAIT_S)).data, DocumentAccepted)
        if event.document_id == document_id:
            return event


async def stored_count(bus: Bus, subject: str) -> int:
    info = await bus.js.stream_info(bus.stream_name("GYRE_INGEST"), subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


# ----------------------------------------------------------------------------- who may connect


async def test_a_connection_without_credentials_is_refused(secured: Secured) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(secured.server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)


async def test_a_wrong_password_is_refused_naming_the_credential(secured: Secured, tmp_path: Path) -> None:
    forged = tmp_path / "gateway.json"
    forged.write_text('{"user": "gateway", "password": "guessed"}')
    settings = msgspec.structs.replace(secured.settings("gateway"), nats_credentials_file=str(forged))
    with pytest.raises(ConnectionError, match="refused the credential of gateway"):
        await connect(settings, name="forger", patient=False)


# ----------------------------------------------------------------------------- external publishers


async def test_a_publisher_publishes_for_its_own_tenant_and_is_refused_for_another(secured: Secured) -> None:
    own, other = secured.admin.subject("ingest.submitted.tenant-a"), secured.admin.subject("ingest.submitted.tenant-b")
    before_other = await stored_count(secured.admin, other)
    async with client_of(secured, publisher_identity("tenant-a")) as publisher:
        event = submission("tenant-a", "crm/own-tenant")
        ack = await publisher.nc.jetstream().publish(own, encode_body(event), headers=headers_of(event))
        forged = submission("tenant-b", "crm/planted")
        await publisher.nc.publish(other, encode_body(forged), headers=headers_of(forged))
        refusal = await publisher.refusal("publish", other)

    assert ack.stream == "GYRE_INGEST" and not ack.duplicate
    assert "tenant-b" in refusal
    assert await stored_count(secured.admin, other) == before_other


async def test_a_publisher_cannot_subscribe_to_anything_but_its_own_replies(secured: Secured) -> None:
    forbidden = (">", "gyre.>", "gyre.ingest.submitted.tenant-a", "_INBOX.>", f"{inbox_prefix('gateway')}.>",
                 f"{inbox_prefix(publisher_identity('tenant-b'))}.>", "$KV.gyre_api_keys.>")
    async with client_of(secured, publisher_identity("tenant-a")) as publisher:
        for subject in forbidden:
            await publisher.nc.subscribe(subject)
        refusals = [await publisher.refusal("subscription", subject) for subject in forbidden]
        # Nor may it read a stream or a bucket through the JetStream API.
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await publisher.nc.request("$JS.API.STREAM.MSG.GET.GYRE_INGEST", b'{"seq": 1}', timeout=REFUSED_S)
        await publisher.refusal("publish", "$JS.API.STREAM.MSG.GET.GYRE_INGEST")
    assert len(refusals) == len(forbidden)


@pytest.mark.models  # the real ingest service (its tokenizer)
async def test_ingest_dead_letters_a_submission_whose_tenant_is_not_its_subjects(secured: Secured) -> None:
    """The publisher of tenant-a may only use tenant-a's subject; a body that names tenant-b there is refused."""
    settings = secured.settings("ingest", model_dir=str(built_models(EMBEDDER)))
    dead_letters = await secured.admin.nc.subscribe(secured.admin.subject("dlq.ingest"))
    accepted = await secured.admin.nc.subscribe(secured.admin.subject("ingest.accepted"))
    async with running_app(create_ingest(settings)), client_of(secured, publisher_identity("tenant-a")) as publisher:
        js = publisher.nc.jetstream()
        subject = secured.admin.subject("ingest.submitted.tenant-a")
        planted = submission("tenant-b", "crm/planted-in-b")
        await js.publish(subject, encode_body(planted), headers=headers_of(planted))
        letter = decode_event((await dead_letters.next_msg(timeout=WAIT_S)).data, DeadLetter)
        honest = submission("tenant-a", "crm/honest", "An honest document of tenant a, long enough to pass the checks.")
        await js.publish(subject, encode_body(honest), headers=headers_of(honest))
        indexed = await next_accepted(accepted, "crm/honest")

    assert letter.service == "ingest" and letter.original_subject == subject
    assert "tenant mismatch" in letter.error and "'tenant-b'" in letter.error and "'tenant-a'" in letter.error
    assert (indexed.tenant, indexed.document_id) == ("tenant-a", "crm/honest")


# ----------------------------------------------------------------------------- buckets


async def test_the_gateway_reads_the_api_key_bucket_and_ingest_cannot(secured: Secured) -> None:
    store = ApiKeyStore(await secured.admin.kv("gyre_api_keys"))
    key, record = await store.create(tenant="tenant-a", scopes=("query",))
    gateway = await connect(secured.settings("gateway"), name="gyre-gateway", patient=False)
    try:
        found = await ApiKeyStore(await gateway.kv("gyre_api_keys")).find(key)
    finally:
        await gateway.close()
    async with client_of(secured, "ingest") as ingest:
        subject = "$JS.API.STREAM.MSG.GET.KV_gyre_api_keys"
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await ingest.nc.request(subject, b'{"last_by_subj": "$KV.gyre_api_keys.>"}', timeout=REFUSED_S)
        refusal = await ingest.refusal("publish", subject)
        await ingest.nc.subscribe("$KV.gyre_api_keys.>")
        await ingest.refusal("subscription", "$KV.gyre_api_keys.>")
    assert found is not None and found.tenant == "tenant-a" and found.key_id == record.key_id
    assert "kv_gyre_api_keys" in refusal.lower()


# ----------------------------------------------------------------------------- request/reply


async def test_only_embed_answers_retrieval_and_only_gateway_generate_evaluate_ask(secured: Secured) -> None:
    subject = secured.admin.subject(RetrieveRequest.subject)
    request = RetrieveRequest(tenant="tenant-a", query="who may answer?", top_k=1)
    answered: list[str] = []

    async def answer(msg: Msg) -> None:
        answered.append(msg.subject)
        await embed.nc.publish(msg.reply, b"an answer")

    async with client_of(secured, "embed") as embed, client_of(secured, "generate") as impostor:
        await embed.nc.subscribe(subject, queue="embed", cb=answer)
        await impostor.nc.subscribe(subject, queue="embed")
        await impostor.refusal("subscription", subject)
        for asker in ("gateway", "generate", "evaluate"):
            async with client_of(secured, asker) as client:
                reply = await client.nc.request(subject, encode_body(request), timeout=WAIT_S)
                assert reply.data == b"an answer", asker
        for outsider in ("ingest", "feedback", "improve", "monitor", publisher_identity("tenant-a")):
            async with client_of(secured, outsider) as client:
                with pytest.raises((nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError)):
                    await client.nc.request(subject, encode_body(request), timeout=REFUSED_S)
                await client.refusal("publish", subject)
        # A responder may answer requests it received, and publish nowhere else.
        await embed.nc.publish(secured.admin.subject("ingest.submitted.tenant-a"), b"{}")
        await embed.refusal("publish", secured.admin.subject("ingest.submitted.tenant-a"))
    assert len(answered) == 3


async def test_a_service_cannot_read_another_services_replies(secured: Secured) -> None:
    async with client_of(secured, "ingest") as ingest:
        await ingest.nc.subscribe(f"{inbox_prefix('gateway')}.>")
        await ingest.nc.subscribe("_INBOX.>")
        await ingest.refusal("subscription", f"{inbox_prefix('gateway')}.>")
        await ingest.refusal("subscription", "_INBOX.>")


# ----------------------------------------------------------------------------- streams and consumers


async def test_a_service_cannot_fetch_another_services_consumer_nor_read_raw_documents(secured: Secured) -> None:
    event = submission("tenant-b", "crm/secret-document", "Confidential text that only ingest may read.")
    admin_js = secured.admin.js
    ack = await admin_js.publish(secured.admin.subject("ingest.submitted.tenant-b"), encode_body(event),
                                 headers=headers_of(event))
    async with client_of(secured, "generate") as generate:
        sub = await generate.nc.jetstream().pull_subscribe_bind(durable="ingest", stream="GYRE_INGEST")
        with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
            await sub.fetch(1, timeout=REFUSED_S)
        await generate.refusal("publish", "$JS.API.CONSUMER.MSG.NEXT.GYRE_INGEST.ingest")
    for reader in ("generate", "ingest", "gateway", "monitor"):
        async with client_of(secured, reader) as client:
            for api in ("$JS.API.DIRECT.GET.GYRE_INGEST", "$JS.API.STREAM.MSG.GET.GYRE_INGEST"):
                with pytest.raises((nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError)):
                    await client.nc.request(api, f'{{"seq": {ack.seq}}}'.encode(), timeout=REFUSED_S)
                await client.refusal("publish", api)
    # The message was there all along: its own consumer's owner fetches it.
    ingest = await connect(secured.settings("ingest"), name="gyre-ingest", patient=False)
    try:
        own = await ingest.js.pull_subscribe_bind(durable="ingest", stream="GYRE_INGEST")
        fetched: list[Msg] = []
        while not any(m.metadata.sequence.stream == ack.seq for m in fetched):
            batch = await own.fetch(16, timeout=WAIT_S)
            fetched += batch
            for msg in batch:
                await msg.ack()
    finally:
        await ingest.close()


async def test_no_service_may_create_or_delete_streams(secured: Secured) -> None:
    for service in SERVICES:
        async with client_of(secured, service) as client:
            subject = "$JS.API.STREAM.DELETE.GYRE_INGEST"
            with pytest.raises((nats.errors.TimeoutError, TimeoutError, nats.errors.NoRespondersError)):
                await client.nc.request(subject, b"", timeout=REFUSED_S)
            await client.refusal("publish", subject)
    info = await secured.admin.js.stream_info("GYRE_INGEST")
    assert info.config.name == "GYRE_INGEST"


# ----------------------------------------------------------------------------- the model hub


async def test_the_admin_promotes_a_model_and_generate_and_embed_pull_it_but_cannot_change_the_hub(
    secured: Secured, tmp_path: Path,
) -> None:
    admin_hub = await ModelHub.open(secured.admin)
    write_model_folder(tmp_path / "built", name="secured-generator")
    version = await admin_hub.push(tmp_path / "built", pushed_by="ops")
    await admin_hub.promote("generator", "production", version.id, by="ops", reason="first")
    for service in ("generate", "embed"):
        bus = await connect(secured.settings(service), name=f"gyre-{service}", patient=False)
        try:
            hub = await ModelHub.open(bus, source=service)
            followed = await hub.resolve("generator@production")
            pulled = await hub.materialise(followed, tmp_path / service)
            with pytest.raises((nats.errors.Error, TimeoutError)):  # refused: the hub's keys are the operator's
                await hub.promote("generator", "candidate", version.id, by=service, reason="not mine")
        finally:
            await bus.close()
        assert pulled.parent == tmp_path / service / "hub" and verify_manifest(pulled) == []
    async with client_of(secured, "generate") as generate:
        await generate.nc.publish("$O.gyre_model_artifacts.C.anything", b"overwrite")
        await generate.refusal("publish", "$O.gyre_model_artifacts.C.anything")
    assert await admin_hub.alias("generator", "candidate") is None
    assert (await admin_hub.resolve("generator@production")).id == version.id


# ----------------------------------------------------------------------------- the local stack's server


async def test_the_stacks_server_admits_each_service_with_its_own_credential_and_nobody_else(tmp_path: Path) -> None:
    stack = LocalStack(data_dir=tmp_path / "data")
    config = stack.write_nats_config()
    text = config.read_text() + (tmp_path / "data" / "nats-auth.conf").read_text()
    assert "no_auth_user" not in text
    for credential in stack.credentials.values():
        assert credential.password not in text  # hashes only
        path = bus_credentials.credential_path(stack.credentials_dir, credential.user)
        assert path.stat().st_mode & 0o777 == 0o600
    # The config's own JetStream block and store (jetstream=False: no second store on the command line).
    with NatsServer(config_file=config, jetstream=False) as server:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=5)
        for service in SERVICES:
            env = {**stack.env_for(service), "GYRE_NATS_URL": server.url}
            bus = await connect(load_settings(env), name=f"gyre-{service}", patient=False)
            assert bus.user == service
            await bus.close()


async def test_a_publisher_added_while_the_server_runs_can_publish_at_once(tmp_path: Path) -> None:
    directory = tmp_path / "credentials"
    bus_credentials.ensure_credential(directory, ADMIN)
    auth, pid_file = tmp_path / "auth.conf", tmp_path / "nats.pid"
    bus_credentials.write_authorization(directory, auth)
    config = tmp_path / "nats-server.conf"
    config.write_text(f'pid_file: "{pid_file}"\ninclude "auth.conf"\n')
    with NatsServer(config_file=config) as server:
        settings = load_settings({}, nats_url=server.url, data_dir=str(tmp_path), nats_credentials_file=str(
            bus_credentials.credential_path(directory, publisher_identity("acme"))))
        bus_credentials.add_publisher(directory, "acme")
        bus_credentials.write_authorization(directory, auth)
        assert bus_credentials.reload_server(pid_file)
        async with asyncio.timeout(WAIT_S):
            while True:  # the reload takes effect a moment after the signal
                try:
                    publisher = await connect(settings, name="acme-exporter", patient=False)
                    break
                except ConnectionError:
                    await asyncio.sleep(0.1)
        await publisher.close()
    assert publisher.user == "publisher-acme"


# ----------------------------------------------------------------------------- TLS


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def build(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey,
              ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = build("Gyre test CA", ca_key, "Gyre test CA", ca_key, ca=True)
    server = build("127.0.0.1", server_key, "Gyre test CA", ca_key, ca=False)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    return paths


async def test_with_tls_a_client_must_trust_the_servers_ca(tmp_path: Path, credentials_dir: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _, _ = _certificates(tmp_path / "other")
    config = tmp_path / "nats-server.conf"
    config.write_text(
        f'tls {{\n  cert_file: "{cert}"\n  key_file: "{key}"\n}}\n'
        + bus_credentials.render_authorization(bus_credentials.known_credentials(credentials_dir))
    )
    admin_file = str(bus_credentials.credential_path(credentials_dir, ADMIN))
    with NatsServer(config_file=config) as server:
        trusted = load_settings({}, nats_url=f"tls://{server.host}:{server.port}", nats_credentials_file=admin_file,
                                nats_tls_ca=str(ca))
        bus = await connect(trusted, name="tls-client", patient=False)
        assert bus.nc.connected_url is not None and bus.nc.client_id is not None
        await bus.nc.publish("gyre.tls.check", b"over TLS")
        await bus.nc.flush()
        await bus.close()

        distrusting = msgspec.structs.replace(trusted, nats_tls_ca=str(other_ca))
        with pytest.raises(ConnectionError, match=r"TLS with NATS .* failed: .*CERTIFICATE_VERIFY_FAILED"):
            await connect(distrusting, name="wrong-ca", patient=False)
        plain = msgspec.structs.replace(trusted, nats_url=server.url, nats_tls_ca="")
        with pytest.raises(ConnectionError, match=r"TLS with NATS .* failed"):
            await connect(plain, name="no-ca", patient=False)


# ----------------------------------------------------------------------------- helpers
