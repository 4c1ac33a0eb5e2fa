"""proto/asyncapi.yaml says what the running services do on the bus, no more and no less.

Each real service app runs here against a real nats-server; what its FastStream broker subscribed
and which publishers it declared are compared with the document's channels of that service. (The
gateway's and evaluate's token-stream readers are per-request nats-py subscriptions: the document
lists them, no broker runs them.) A publish outside the declared subjects is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import yaml

from gyre_contracts import DocumentSubmitted
from gyre_embed.app import create_app as create_embed
from gyre_evaluate.app import create_app as create_evaluate
from gyre_feedback.app import create_app as create_feedback
from gyre_gateway.app import create_app as create_gateway
from gyre_generate.app import create_app as create_generate
from gyre_improve.app import create_app as create_improve
from gyre_ingest.app import create_app as create_ingest
from gyre_monitor.app import create_app as create_monitor
from gyre_runtime.bus.broker import PER_REQUEST
from gyre_runtime.bus.publisher import UndeclaredPublish
from gyre_runtime.config import Settings, load_settings
from tests.support.models import EMBEDDER, built_models
from tests.support.nats_server import NatsServer
from tests.support.scripted_model import ScriptedModel
from tests.support.services import running_app

ASYNCAPI = Path(__file__).resolve().parents[2] / "proto" / "asyncapi.yaml"

APPS: dict[str, Callable[[Settings], Any]] = {
    "gateway": create_gateway,
    "ingest": create_ingest,
    "feedback": create_feedback,
    "improve": create_improve,
    "monitor": create_monitor,
    "evaluate": create_evaluate,
    "generate": lambda settings: create_generate(settings, open_model=lambda _: ScriptedModel()),
    "embed": create_embed,
}


def documented(service: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(receive, send) channels of ``service`` in the document, as (title, address) pairs."""
    doc = yaml.safe_load(ASYNCAPI.read_text())
    receive: set[tuple[str, str]] = set()
    send: set[tuple[str, str]] = set()
    for operation in doc["operations"].values():
        channel_id = unquote(operation["channel"]["$ref"].rsplit("/", 1)[1])
        if not channel_id.startswith(f"{service}:"):
            continue
        pair = (channel_id, doc["channels"][channel_id]["address"])
        (receive if operation["action"] == "receive" else send).add(pair)
    return receive, send


def running(broker: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(subscribers, publishers) of a running broker, as (title, address) pairs."""
    subscribers = {(s.specification.config.title_, s.subject.template) for s in broker.subscribers if s.running}
    publishers = {(p.specification.config.title_, p.subject.template) for p in broker.publishers}
    return subscribers, publishers


@pytest.mark.models
@pytest.mark.parametrize("service_name", sorted(APPS))
async def test_the_document_lists_exactly_what_the_running_service_subscribes_and_publishes(
    service_name: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = load_settings(
        {}, nats_url=nats_server.url, data_dir=str(tmp_path / "data"), model_dir=str(built_models(EMBEDDER)),
    )
    async with running_app(APPS[service_name](settings)) as service:
        assert service.broker is not None
        subscribers, publishers = running(service.broker)
    receive, send = documented(service_name)
    per_request = {(title, address) for title, address in receive if title.split(":", 1)[1] in PER_REQUEST}
    if service_name != "gateway":  # the gateway only asks and publishes; the rest all consume
        assert receive - per_request, f"the document names no subscriber of {service_name}"
    assert subscribers == receive - per_request
    assert publishers == send


async def test_a_service_cannot_publish_outside_its_declared_publishers(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = load_settings({}, nats_url=nats_server.url, data_dir=str(tmp_path / "data"))
    async with running_app(create_feedback(settings)) as service:
        with pytest.raises(UndeclaredPublish, match=r"ingest\.submitted\.default"):
            await service.publisher.publish(DocumentSubmitted(document_id="d", text="x"))
