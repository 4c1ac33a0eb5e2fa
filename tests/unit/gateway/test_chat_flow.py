"""A chat request's life without a bus: back-pressure, prompt label, first-token timeout, cancel on leave."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from gyre_contracts import (
    GenerationFailed,
    GenerationLoad,
    GenerationLoadRequest,
    TokenDelta,
    decode_event,
)
from gyre_gateway.chat.backpressure import admit_generation
from gyre_gateway.chat.protocol import ChatCompletionRequest
from gyre_gateway.chat.request import generation_request
from gyre_gateway.chat.serving import GenerationFollower, start_chat
from gyre_gateway.disconnect import unless_client_leaves
from gyre_gateway.errors import ApiError
from gyre_runtime.config import load_settings
from tests.support.fake_bus import FakeNats, fake_service

REQUEST_ID = "chatcmpl-1"
USER = [{"role": "user", "content": "hi"}]


def bus_with(*, load: Any = None, stream: list[Any] | None = None) -> FakeNats:
    """A bus where generate replicas answer ``gyre.generate.load`` with ``load`` and the stream carries ``stream``."""
    return FakeNats({"gyre.generate.load": load}, stream)


def chat_service(nc: FakeNats, **settings: Any) -> Any:
    values = {"generation_queue_allowance": 1, "generate_load_timeout_s": 0.2, "first_token_timeout_s": 7.0,
              **settings}
    return fake_service(nc, **values)


def body(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"messages": USER, **fields})


def delta(text: str) -> TokenDelta:
    return TokenDelta(tenant="tenant-a", request_id=REQUEST_ID, index=0, text=text)


# ---------------------------------------------------------------- back-pressure


async def test_room_left_admits_the_request() -> None:
    nc = bus_with(load=GenerationLoad(in_flight=2, capacity=2))
    await admit_generation(chat_service(nc), "tenant-a")
    [asked] = nc.requests
    assert (asked.subject, asked.timeout) == ("gyre.generate.load", 0.2)
    assert decode_event(asked.payload, GenerationLoadRequest).tenant == "tenant-a"


async def test_a_queue_past_the_allowance_is_429_with_retry_after() -> None:
    nc = bus_with(load=GenerationLoad(in_flight=3, capacity=2))
    with pytest.raises(ApiError) as caught:
        await admit_generation(chat_service(nc), "tenant-a")
    assert caught.value.status_code == 429 and caught.value.code == "generation_queue_full"
    assert caught.value.headers == {"Retry-After": "2"}


async def test_no_generate_replica_listening_is_503() -> None:
    with pytest.raises(ApiError) as caught:
        await admit_generation(chat_service(bus_with(load=nats.errors.NoRespondersError())), "tenant-a")
    assert caught.value.status_code == 503 and "no replica listens" in caught.value.message
    assert caught.value.headers == {"Retry-After": "1"}


async def test_a_replica_too_busy_to_say_its_load_does_not_refuse_the_request() -> None:
    # It listens (else NoResponders) but its CPU is on a generation: admit; the first-token timeout bounds the wait.
    await admit_generation(chat_service(bus_with(load=nats.errors.TimeoutError())), "tenant-a")


async def test_a_refused_request_is_never_published() -> None:
    nc = bus_with(load=GenerationLoad(in_flight=9, capacity=1))
    service = chat_service(nc)
    with pytest.raises(ApiError):
        await start_chat(service, "tenant-a", body(stream=True))
    assert service.publisher.events == [] and nc.published == []


# ---------------------------------------------------------------- prompt label and parameters


def test_the_prompt_label_comes_from_the_body_else_the_header_else_the_default() -> None:
    settings = load_settings({})
    assert generation_request("t", body(), REQUEST_ID, settings).prompt_label == "production"
    assert generation_request("t", body(), REQUEST_ID, settings, prompt_label="candidate").prompt_label == "candidate"
    from_body = generation_request("t", body(prompt_label="v2"), REQUEST_ID, settings, prompt_label="candidate")
    assert from_body.prompt_label == "v2"


def test_sampling_parameters_and_retrieval_pass_through() -> None:
    event = generation_request(
        "t", body(top_k=0, top_p=0.5, seed=-3, retrieval=False, stop=["a", "b"]), REQUEST_ID, load_settings({})
    )
    assert (event.params.top_k, event.params.top_p, event.params.seed) == (0, 0.5, -3)
    assert event.params.stop == ("a", "b") and event.retrieval is False


# ---------------------------------------------------------------- following, timeouts, cancelling


async def started_follower(nc: FakeNats, **settings: Any) -> GenerationFollower:
    service = chat_service(nc, **settings)
    request = generation_request("tenant-a", body(), REQUEST_ID, service.settings)
    follower = GenerationFollower(service, request)
    await follower.start()
    assert service.publisher.events == [request] and nc.subscribed == [f"gyre.generate.stream.{REQUEST_ID}"]
    return follower


async def test_no_first_token_in_time_is_504_and_cancels_the_generation() -> None:
    nc = bus_with()
    follower = await started_follower(nc)
    with pytest.raises(ApiError) as caught:
        await follower.wait_first()
    assert caught.value.status_code == 504 and "GYRE_FIRST_TOKEN_TIMEOUT_S" in caught.value.message
    await follower.close()
    [cancel] = nc.cancels()
    assert cancel.request_id == REQUEST_ID and cancel.tenant == "tenant-a" and "timeout" in cancel.reason
    [sent] = nc.published
    assert sent.subject == f"gyre.generate.cancel.{REQUEST_ID}" and "Nats-Msg-Id" not in sent.headers


async def test_closing_before_the_end_cancels_once() -> None:
    nc = bus_with(stream=[delta("He")])
    follower = await started_follower(nc)
    assert isinstance(await follower.wait_first(), TokenDelta)
    await follower.close()
    await follower.close()
    assert [c.reason for c in nc.cancels()] == ["client disconnected"] and nc.sub.unsubscribed


async def test_a_finished_generation_is_not_cancelled() -> None:
    failed = GenerationFailed(tenant="tenant-a", request_id=REQUEST_ID, error="x")
    nc = bus_with(stream=[delta("a"), failed])
    follower = await started_follower(nc)
    assert [type(m) async for m in follower.messages()] == [TokenDelta, GenerationFailed]
    await follower.close()
    assert nc.cancels() == []


async def test_a_failure_before_any_token_is_a_plain_502_for_a_stream() -> None:
    failed = GenerationFailed(tenant="tenant-a", request_id=REQUEST_ID, error="model fell over")
    nc = bus_with(load=GenerationLoad(in_flight=0, capacity=1), stream=[failed])
    with pytest.raises(ApiError) as caught:
        await start_chat(chat_service(nc), "tenant-a", body(stream=True))
    assert caught.value.status_code == 502 and "model fell over" in caught.value.message
    assert nc.cancels() == [] and nc.sub.unsubscribed


# ---------------------------------------------------------------- client disconnects


class FakeRequest:
    def __init__(self, leaves_after_s: float | None) -> None:
        self.leaves_after_s = leaves_after_s

    async def receive(self) -> dict[str, Any]:
        if self.leaves_after_s is None:
            await asyncio.Event().wait()
        await asyncio.sleep(self.leaves_after_s or 0)
        return {"type": "http.disconnect"}


async def test_work_finishing_first_is_returned() -> None:
    async def work() -> str:
        return "answer"

    assert await unless_client_leaves(FakeRequest(None), work()) == "answer"  # type: ignore[arg-type]


async def test_a_client_leaving_first_cancels_the_work_and_its_clean_up_runs() -> None:
    cleaned = asyncio.Event()

    async def work() -> str:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()
        return "never"

    with pytest.raises(ApiError) as caught:
        await unless_client_leaves(FakeRequest(0.0), work())  # type: ignore[arg-type]
    assert caught.value.status_code == 499 and cleaned.is_set()
