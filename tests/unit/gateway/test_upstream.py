"""How bus failures become HTTP errors: no responder 503, silence 504, bad reply 502, refused publish 503."""

from __future__ import annotations

from typing import Any

import nats.errors
import pytest

from gyre_contracts import FeedbackSubmitted, RetrieveRequest, RetrieveResult
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish, request_reply
from tests.support.fake_bus import FakeNats, FakePublisher, fake_service

EVENT = RetrieveRequest(tenant="t", query="q")


def bus_answering(outcome: Any) -> FakeNats:
    return FakeNats({"gyre.retrieve": outcome})


async def ask(outcome: Any, nc: FakeNats | None = None) -> RetrieveResult:
    service = fake_service(nc or bus_answering(outcome), request_timeout_s=2.5)
    return await request_reply(service, EVENT, RetrieveResult, unavailable="embed is down")


async def test_a_reply_is_decoded_into_its_event() -> None:
    nc = bus_answering(b'{"type": "gyre.retrieve.result.v1", "retrieval_ms": 2.0}')
    result = await ask(None, nc)
    assert result.retrieval_ms == 2.0
    # A request is answered, not stored: no JetStream de-duplication id; the tenant travels in the headers.
    [sent] = nc.requests
    assert sent.subject == "gyre.retrieve" and "Nats-Msg-Id" not in sent.headers and sent.headers["ce-tenant"] == "t"


async def test_no_responder_is_503_with_the_callers_message() -> None:
    with pytest.raises(ApiError) as caught:
        await ask(nats.errors.NoRespondersError())
    assert caught.value.status_code == 503 and caught.value.message == "embed is down"


async def test_no_reply_in_time_is_504() -> None:
    with pytest.raises(ApiError) as caught:
        await ask(nats.errors.TimeoutError())
    assert caught.value.status_code == 504 and "2.5s" in caught.value.message


async def test_an_unreadable_reply_is_502() -> None:
    with pytest.raises(ApiError) as caught:
        await ask(b'{"type": "something.else"}')
    assert caught.value.status_code == 502 and caught.value.code == "bad_upstream_reply"


async def test_a_publish_the_bus_does_not_ack_is_503() -> None:
    event = FeedbackSubmitted(feedback_id="f", request_id="r", rating=1)
    with pytest.raises(ApiError) as caught:
        unacknowledged = FakePublisher(fails_with=nats.errors.TimeoutError())
        await publish(fake_service(publisher=unacknowledged), event, event_id="f")
    assert caught.value.status_code == 503 and caught.value.code == "publish_failed"


def test_an_unconnected_service_is_503() -> None:
    with pytest.raises(ApiError) as caught:
        connected(fake_service(ready=False))
    assert caught.value.status_code == 503 and caught.value.code == "bus_unavailable"


@pytest.mark.parametrize("error", [nats.errors.TimeoutError(), nats.errors.NoRespondersError()])
def test_a_registry_read_or_write_the_bus_cannot_answer_is_a_503_to_retry_not_a_500(error: Exception) -> None:
    """Seen in the cluster chaos run: a KV write during a node loss answered 500 internal_error."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from gyre_gateway.errors import install_error_handlers

    app = FastAPI()
    install_error_handlers(app)

    @app.post("/v1/documents")
    async def submit() -> None:
        raise error  # what DocumentRegistry.update raises while JetStream has no leader

    response = TestClient(app).post("/v1/documents")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"]["code"] == "bus_unavailable"
