"""How bus failures become HTTP errors: no responder 503, silence 504, bad reply 502, refused publish 503."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import nats.errors
import pytest

from gyre_contracts import FeedbackSubmitted, RetrieveRequest, RetrieveResult
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import connected, publish, request_reply
from gyre_runtime.config import load_settings

EVENT = RetrieveRequest(tenant="t", query="q")


class FakeNats:
    is_connected = True

    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    async def request(self, subject: str, payload: bytes, **kwargs: Any) -> Any:
        headers = kwargs["headers"]
        assert subject == "gyre.retrieve" and "Nats-Msg-Id" not in headers and headers["ce-tenant"] == "t"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return SimpleNamespace(data=self.outcome, headers=None)


class FakePublisher:
    async def publish(self, event: Any, **_: Any) -> None:
        raise nats.errors.TimeoutError


def fake_service(nc: Any = None, *, ready: bool = True) -> Any:
    settings = load_settings({}, request_timeout_s=2.5)
    bus = SimpleNamespace(nc=nc or FakeNats(b""), settings=settings, subject=settings.subject)
    return SimpleNamespace(ready=ready, bus=bus, settings=settings, startup_error=None, publisher=FakePublisher())


async def ask(outcome: Any) -> RetrieveResult:
    return await request_reply(fake_service(FakeNats(outcome)), EVENT, RetrieveResult, unavailable="embed is down")


async def test_a_reply_is_decoded_into_its_event() -> None:
    result = await ask(b'{"type": "gyre.retrieve.result.v1", "retrieval_ms": 2.0}')
    assert result.retrieval_ms == 2.0


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
        await publish(fake_service(), event, event_id="f")
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
