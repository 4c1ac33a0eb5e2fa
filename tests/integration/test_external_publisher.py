"""docs/ingest-events.md holds: its raw NATS bytes, sent over a plain socket, are a valid DocumentSubmitted.

The examples are read from the doc itself (fenced blocks after ``<!-- example: NAME -->``), so
the page cannot drift from what the platform accepts.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from gyre_contracts import DocumentSubmitted, EnvelopeError, decode_event
from gyre_runtime.bus.connection import Bus
from tests.support.nats_server import NatsServer

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "ingest-events.md"
SCHEMA = REPO / "proto" / "schemas" / "gyre.ingest.submitted.v1.schema.json"
EXAMPLE = re.compile(r"<!-- example: (?P<name>[\w-]+) -->\n```[\w-]*\n(?P<body>.*?)\n```", re.DOTALL)
WAIT_S = 10.0


def examples() -> dict[str, str]:
    found = {m["name"]: m["body"] for m in EXAMPLE.finditer(DOC.read_text(encoding="utf-8"))}
    assert {"body", "raw-nats", "raw-nats-reply"} <= set(found), f"examples missing in {DOC}: {sorted(found)}"
    return found


def wire_bytes(block: str) -> bytes:
    """The doc shows protocol lines with plain line ends; on the wire each ends with CR LF."""
    return "".join(line + "\r\n" for line in block.split("\n")).encode("utf-8")


def hpub_parts(block: str) -> tuple[str, dict[str, str], bytes]:
    """(subject, headers, body) of the HPUB in the raw example, checked against its own byte counts."""
    wire = wire_bytes(block)
    start = wire.index(b"HPUB ")
    line_end = wire.index(b"\r\n", start)
    fields = wire[start:line_end].decode().split()
    subject, header_len, total_len = fields[1], int(fields[-2]), int(fields[-1])
    rest = wire[line_end + 2 :]
    header_block, body = rest[:header_len], rest[header_len:total_len]
    assert header_block.startswith(b"NATS/1.0\r\n") and header_block.endswith(b"\r\n\r\n")
    assert rest[total_len : total_len + 2] == b"\r\n", "the HPUB byte counts do not match the example's bytes"
    headers = dict(
        line.split(": ", 1) for line in header_block.decode().split("\r\n")[1:] if line
    )
    return subject, headers, body


def protocol_frames(data: bytes) -> tuple[list[str], bytes]:
    """Server messages as text (``PONG``, ``MSG ...`` with its payload), INFO dropped; and what is left unparsed."""
    frames: list[str] = []
    while b"\r\n" in data:
        line, rest = data.split(b"\r\n", 1)
        if line.startswith(b"MSG "):
            size = int(line.split()[-1])
            if len(rest) < size + 2:
                break  # the payload has not fully arrived yet
            frames.append(f"{line.decode()}\n{rest[:size].decode()}")
            rest = rest[size + 2 :]
        elif not line.startswith(b"INFO "):
            frames.append(line.decode())
        data = rest
    return frames, data


async def send_raw_session(server: NatsServer, session: bytes) -> list[str]:
    """A plain TCP client: read INFO, send the doc's bytes, collect the answers until PONG and the ack are in."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        info = await asyncio.wait_for(reader.readline(), WAIT_S)
        assert info.startswith(b"INFO ") and json.loads(info[5:])["headers"] is True
        writer.write(session)
        await writer.drain()
        frames: list[str] = []
        pending = b""
        while "PONG" not in frames or not any(f.startswith("MSG ") for f in frames):
            chunk = await asyncio.wait_for(reader.read(4096), WAIT_S)
            assert chunk, f"connection closed; received so far: {frames} {pending!r}"
            more, pending = protocol_frames(pending + chunk)
            frames += more
            assert not any(f.startswith("-ERR") for f in frames), frames
        return frames
    finally:
        writer.close()
        await writer.wait_closed()


def test_the_documented_body_matches_the_json_schema() -> None:
    body = json.loads(examples()["body"])
    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(body)
    # And the body sent on the wire is the same document.
    _, _, wire_body = hpub_parts(examples()["raw-nats"])
    assert json.loads(wire_body) == body


def test_the_documented_headers_are_the_cloudevents_set_gyre_reads() -> None:
    subject, headers, _ = hpub_parts(examples()["raw-nats"])
    assert subject == "gyre.ingest.submitted.default"  # the tenant's subject: its credential may publish there
    assert set(headers) == {
        "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time", "ce-subject", "ce-tenant", "content-type",
        "Nats-Msg-Id",
    }
    assert headers["Nats-Msg-Id"] == headers["ce-id"] and headers["ce-type"] == DocumentSubmitted.event_type()
    body = json.loads(hpub_parts(examples()["raw-nats"])[2])
    assert headers["ce-subject"] == body["document_id"] and headers["ce-tenant"] == body["tenant"]


async def test_the_raw_protocol_example_stores_a_document_gyre_decodes(nats_server: NatsServer, bus: Bus) -> None:
    found = examples()
    received = await send_raw_session(nats_server, wire_bytes(found["raw-nats"]))
    documented, _ = protocol_frames(wire_bytes(found["raw-nats-reply"]))
    assert sorted(received) == sorted(documented), "the server's answer differs from the documented one"

    stored = await bus.js.get_last_msg(bus.stream_name("GYRE_INGEST"), bus.subject("ingest.submitted.default"))
    _, sent_headers, sent_body = hpub_parts(found["raw-nats"])
    headers: dict[str, Any] = dict(stored.headers or {})
    assert {k: headers.get(k) for k in sent_headers} == sent_headers
    assert stored.data == sent_body
    event = decode_event(stored.data or b"", DocumentSubmitted, headers)
    assert (event.tenant, event.document_id, event.content_type) == ("default", "crm/ticket-4711", "text/markdown")
    assert event.text is not None and event.text.startswith("# Printer on floor 3\n\n")
    assert event.metadata == {"system": "crm", "ticket": 4711} and event.submission_id == ""


async def test_publishing_the_example_again_is_dropped_as_a_duplicate(nats_server: NatsServer, bus: Bus) -> None:
    session = wire_bytes(examples()["raw-nats"])
    await send_raw_session(nats_server, session)
    again = await send_raw_session(nats_server, session)
    ack = json.loads(next(f for f in again if f.startswith("MSG ")).split("\n", 1)[1])
    assert ack == {"stream": "GYRE_INGEST", "seq": 1, "duplicate": True}
    info = await bus.js.stream_info(bus.stream_name("GYRE_INGEST"))
    assert info.state.messages == 1


def test_a_ce_type_that_contradicts_the_body_is_refused_by_the_decoder() -> None:
    """What the doc warns of: such a message goes to the dead-letter stream instead of being ingested."""
    _, headers, body = hpub_parts(examples()["raw-nats"])
    with pytest.raises(EnvelopeError, match="does not match"):
        decode_event(body, DocumentSubmitted, {**headers, "ce-type": "gyre.ingest.accepted.v1"})
