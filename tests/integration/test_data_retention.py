"""Personal data does not linger on the bus: stream ages from settings, redacted dead letters, redacted feedback.

Real nats-server; the consumer worker, the feedback handler and `gyre dlq redact` as they run.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from gyre_cli.dlq_command import redact_letters, stored_letters
from gyre_contracts import (
    DeadLetter,
    FeedbackRecorded,
    FeedbackSubmitted,
    GenerationCompleted,
    Timings,
    Usage,
    decode_event,
)
from gyre_feedback.handlers import FeedbackHandler
from gyre_runtime.bus.connection import Bus, connect, ensure_topology
from gyre_runtime.bus.dead_letters import REDACTED_HEADER
from gyre_runtime.bus.publisher import Publisher
from gyre_runtime.bus.topology import DAY
from gyre_runtime.config import Settings, load_settings
from gyre_runtime.service import Service
from gyre_runtime.state.generations import GenerationStore
from gyre_runtime.state.tenants import TenantPolicies, TenantPolicy
from tests.support.nats_server import NatsServer

WAIT_S = 20.0
EMAIL = "jane.doe@example.com"
PHONE = "+44 20 7946 0958"
# A FeedbackSubmitted missing its required fields: undecodable, so it is dead-lettered at once.
UNDECODABLE = (
    '{"type": "gyre.feedback.submitted.v1", "tenant": "acme", "comment": "write to ' + EMAIL + ' or call '
    + PHONE + '"}'
).encode()


def settings_for(nats_server: NatsServer, tmp_path: Path, **overrides: object) -> Settings:
    return load_settings({}, nats_url=nats_server.url, data_dir=str(tmp_path / "data"), **overrides)


@asynccontextmanager
async def feedback_service(settings: Settings, pii: str = "redact") -> AsyncIterator[Service]:
    """The feedback consumer with its real handler; the tenant policy as given."""
    service = Service("feedback", settings)

    async def wire(svc: Service) -> None:
        generations = GenerationStore(await svc.bus.kv("gyre_generations"))
        policies = TenantPolicies(await svc.bus.kv("gyre_tenants"), TenantPolicy(pii=pii))  # type: ignore[arg-type]
        svc.consume("feedback", FeedbackHandler(generations, svc.publisher, policies))

    service.on_start(wire)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def wait_for_letters(bus: Bus, count: int) -> list[tuple[int, DeadLetter | None]]:
    """Once ``count`` letters have reached the dead-letter stream, the letters it holds."""
    sub = await bus.js.subscribe(bus.subject("dlq.>"), ordered_consumer=True)
    try:
        for _ in range(count):
            await sub.next_msg(timeout=WAIT_S)
    finally:
        await sub.unsubscribe()
    return await stored_letters(bus)


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait (at most WAIT_S) until ``check`` holds: for what the bus announces no event of."""

    async def poll() -> None:
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), WAIT_S)


def payload_of(letter: DeadLetter | None) -> str:
    assert letter is not None
    return base64.b64decode(letter.payload).decode("utf-8", "replace")


# ---------------------------------------------------------------------------- stream ages


async def test_streams_keep_raw_documents_conversations_and_dead_letters_for_shorter_by_default(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    bus = await connect(settings_for(nats_server, tmp_path), name="gyre-test")
    try:
        await ensure_topology(bus)
        ages = {name: (await bus.js.stream_info(bus.stream_name(name))).config.max_age
                for name in ("GYRE_INGEST", "GYRE_GENERATE", "GYRE_DLQ", "GYRE_EMBED", "GYRE_FEEDBACK")}
    finally:
        await bus.close()
    assert ages == {"GYRE_INGEST": 7 * DAY, "GYRE_GENERATE": 7 * DAY, "GYRE_DLQ": 14 * DAY,
                    "GYRE_EMBED": 30 * DAY, "GYRE_FEEDBACK": 30 * DAY}


async def test_stream_ages_follow_the_retention_settings_also_for_existing_streams(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    first = await connect(settings_for(nats_server, tmp_path), name="gyre-test")
    await ensure_topology(first)
    await first.close()
    changed = settings_for(nats_server, tmp_path, retention_ingest_days=1, retention_dlq_days=0.5, retention_days=3)
    bus = await connect(changed, name="gyre-test")
    try:
        await ensure_topology(bus)  # what every service does at start: existing streams are updated
        ingest = (await bus.js.stream_info(bus.stream_name("GYRE_INGEST"))).config.max_age
        dlq = (await bus.js.stream_info(bus.stream_name("GYRE_DLQ"))).config.max_age
        embed = (await bus.js.stream_info(bus.stream_name("GYRE_EMBED"))).config.max_age
    finally:
        await bus.close()
    assert (ingest, dlq, embed) == (1 * DAY, 0.5 * DAY, 3 * DAY)


# ---------------------------------------------------------------------------- dead letters


async def test_a_dead_letter_keeps_no_personal_data_of_the_failed_message(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path)  # GYRE_DEAD_LETTER_REDACTION defaults to pii
    async with feedback_service(settings) as service:
        await service.bus.js.publish(service.bus.subject("feedback.submitted"), UNDECODABLE)
        [(_, letter)] = await wait_for_letters(service.bus, 1)
    assert letter is not None and letter.headers[REDACTED_HEADER] == "pii"
    payload = payload_of(letter)
    assert EMAIL not in payload and PHONE not in payload and "[EMAIL]" in payload and "[PHONE]" in payload
    assert "gyre.feedback.submitted.v1" in payload  # what it was stays readable


async def test_dead_letters_can_keep_everything_and_be_redacted_or_deleted_later(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path, dead_letter_redaction="none")
    async with feedback_service(settings) as service:
        for _ in range(2):
            await service.bus.js.publish(service.bus.subject("feedback.submitted"), UNDECODABLE)
        letters = await wait_for_letters(service.bus, 2)
        assert all(EMAIL in payload_of(letter) for _, letter in letters)

        summary = await redact_letters(settings, mode="pii", service="feedback")
        assert (summary.redacted, summary.deleted) == (2, 0)
        letters = await stored_letters(service.bus)
        assert len(letters) == 2
        assert all(EMAIL not in payload_of(letter) and "[EMAIL]" in payload_of(letter) for _, letter in letters)
        # Nothing else holds the address: the originals are gone from the stream, not only hidden.
        info = await service.bus.js.stream_info(service.bus.stream_name("GYRE_DLQ"))
        assert info.state.messages == 2

        again = await redact_letters(settings, mode="pii")
        assert (again.redacted, again.kept) == (0, 2)  # already redacted
        untouched = await redact_letters(settings, mode="delete", service="ingest")
        assert (untouched.deleted, untouched.kept) == (0, 2)
        deleted = await redact_letters(settings, mode="delete", service="feedback")
        assert deleted.deleted == 2 and await stored_letters(service.bus) == []


# ---------------------------------------------------------------------------- feedback comments


def answer(request_id: str) -> GenerationCompleted:
    return GenerationCompleted(
        tenant="acme", request_id=request_id, question="q?", answer="a.", citations=(),
        usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        timings=Timings(retrieval_ms=1, time_to_first_token_ms=2, total_ms=3), model_version="m:1",
        prompt_version="p:1",
    )


async def test_a_feedback_comment_with_personal_data_is_recorded_redacted_and_leaves_the_bus(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    settings = settings_for(nats_server, tmp_path)
    async with feedback_service(settings) as service:
        bus = service.bus
        await GenerationStore(await bus.kv("gyre_generations")).put(answer("r1"))
        sub = await bus.js.subscribe(bus.subject("feedback.recorded"), ordered_consumer=True)
        feedback = FeedbackSubmitted(tenant="acme", feedback_id="f1", request_id="r1", rating=-1,
                                     comment=f"wrong, mail {EMAIL}", correction=f"call {PHONE}")
        await Publisher(bus, "gateway").publish(feedback, event_id="f1")  # as the gateway sends it
        message = await sub.next_msg(timeout=WAIT_S)
        await sub.unsubscribe()
        recorded = decode_event(message.data, FeedbackRecorded, dict(message.headers or {}))
        assert (recorded.comment, recorded.correction) == ("wrong, mail [EMAIL]", "call [PHONE]")

        async def submission_gone() -> bool:
            info = await bus.js.stream_info(bus.stream_name("GYRE_FEEDBACK"),
                                            subjects_filter=bus.subject("feedback.submitted"))
            return not info.state.subjects

        await until(submission_gone)  # the submission as sent, with the address, is deleted once handled
