"""The document registry's order rules, as plain functions: versions numbered when sent, tombstones, purges."""

from __future__ import annotations

import base64
import datetime as dt
import json

import msgspec

from gyre_contracts import DeadLetter
from gyre_runtime.bus.dead_letters import REDACTED_HEADER, redact_dead_letter, redact_payload
from gyre_runtime.bus.topology import DAY, STREAMS, stream_max_age_s
from gyre_runtime.config import load_settings
from gyre_runtime.state.documents import (
    DocumentRecord,
    StoredMessage,
    assigned_version,
    decode_record,
    indexing_verdict,
    messages_to_purge,
    sent_before_deletion,
    submission_verdict,
    with_assigned_version,
    with_new_version,
    with_stored_message,
    with_tombstone,
    without_messages,
)

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def sent(current: DocumentRecord | None = None, title: str = "") -> DocumentRecord:
    return with_new_version(current, tenant="t", document_id="d", title=title, submitted_at=NOW)


def test_each_submission_sent_gets_the_next_version_and_leaves_the_indexed_one_in_place() -> None:
    first = sent(title="Guide")
    indexed = msgspec.structs.replace(first, status="indexed", version=1, chunks=4, indexed_at=NOW)
    second = sent(indexed)
    assert (first.submissions, second.submissions) == (1, 2)
    assert (second.status, second.version, second.chunks, second.title) == ("pending", 1, 4, "Guide")


def test_a_tombstone_covers_every_version_sent_before_it_and_a_later_submission_is_a_new_version() -> None:
    record = with_tombstone(sent(sent()), ingest_watermark=41)
    assert (record.status, record.deleted_up_to_version, record.deleted_ingest_watermark) == ("deleted", 2, 41)
    assert record.deleted and record.indexed_at is None and record.chunks == 0
    again = sent(record)
    assert (again.status, again.submissions, again.deleted) == ("pending", 3, False)
    assert submission_verdict(again, 2) == "deleted" and submission_verdict(again, 3) == "current"


def test_a_late_deletion_naming_an_older_version_leaves_the_newer_one_standing() -> None:
    record = sent(sent(sent()))  # versions 1..3 sent; another system's deletion named version 1
    late = with_tombstone(record, up_to_version=1)
    assert late.deleted_up_to_version == 1 and not late.deleted and late.status == "pending"
    # A tombstone never moves back.
    assert with_tombstone(with_tombstone(record), up_to_version=1).deleted_up_to_version == 3


def test_ingest_drops_submissions_a_deletion_or_a_newer_submission_was_sent_after() -> None:
    record = sent(sent())
    assert submission_verdict(record, 1) == "superseded"
    assert submission_verdict(record, 2) == "current"
    assert submission_verdict(with_tombstone(record), 2) == "deleted"
    assert submission_verdict(None, 1) == "current"


def test_embed_keeps_a_version_until_a_newer_one_is_accepted_since_the_newer_may_be_rejected() -> None:
    accepted = msgspec.structs.replace(sent(sent()), version=1)  # version 2 sent, not decided yet
    assert indexing_verdict(accepted, 1) == "current"
    assert indexing_verdict(msgspec.structs.replace(accepted, version=2), 1) == "superseded"
    assert indexing_verdict(with_tombstone(accepted), 1) == "deleted"


def test_a_submission_without_a_version_is_numbered_once_and_one_stored_before_a_deletion_is_stale() -> None:
    record = with_assigned_version(sent(), tenant="t", document_id="d", submission_id="crm-7", submitted_at=NOW,
                                   title="")
    assert record is not None and assigned_version(record, "crm-7") == 2
    # A redelivery finds its number: nothing to write.
    assert with_assigned_version(record, tenant="t", document_id="d", submission_id="crm-7", submitted_at=NOW,
                                 title="") is None
    deleted = with_tombstone(record, ingest_watermark=10)
    assert sent_before_deletion(deleted, 10) and not sent_before_deletion(deleted, 11)
    assert not sent_before_deletion(None, 3)


def test_only_the_messages_of_deleted_versions_are_purged() -> None:
    record = sent(sent())
    for message in (StoredMessage(stream="GYRE_INGEST", sequence=5, version=1),
                    StoredMessage(stream="GYRE_EMBED", sequence=9, version=1),
                    StoredMessage(stream="GYRE_INGEST", sequence=12, version=2)):
        record = with_stored_message(record, message) or record
    assert with_stored_message(record, StoredMessage(stream="GYRE_INGEST", sequence=5, version=1)) is None
    deleted = with_tombstone(record, up_to_version=1)
    purge = messages_to_purge(deleted)
    assert [m.sequence for m in purge] == [5, 9]
    remaining = without_messages(deleted, purge)
    assert remaining is not None and [m.sequence for m in remaining.stored_messages] == [12]


def test_records_written_before_versions_were_numbered_when_sent_read_consistently() -> None:
    old = b'{"document_id": "d", "tenant": "t", "status": "deleted", "version": 3}'
    record = decode_record(old)
    assert (record.submissions, record.deleted_up_to_version, record.deleted) == (3, 3, True)
    assert submission_verdict(sent(record), 4) == "current"


# ---------------------------------------------------------------------------- retention settings


def test_each_stream_keeps_events_as_long_as_its_retention_setting_says() -> None:
    settings = load_settings({"GYRE_RETENTION_INGEST_DAYS": "2", "GYRE_RETENTION_DAYS": "0"})
    ages = {spec.name: stream_max_age_s(spec, settings) for spec in STREAMS}
    assert ages["GYRE_INGEST"] == 2 * DAY and ages["GYRE_GENERATE"] == 7 * DAY and ages["GYRE_DLQ"] == 14 * DAY
    assert ages["GYRE_EMBED"] == 0  # no age limit


# ---------------------------------------------------------------------------- dead letters


def test_a_redacted_payload_keeps_its_shape_without_personal_data_or_document_bytes() -> None:
    body = {"type": "gyre.ingest.submitted.v1", "document_id": "d", "text": "mail jane@example.org",
            "content": base64.b64encode(b"phone +44 20 7946 0958").decode(), "metadata": {"owner": "10.1.2.3"}}
    redacted = json.loads(redact_payload(json.dumps(body).encode(), "pii"))
    assert redacted == {**body, "text": "mail [EMAIL]", "content": "", "metadata": {"owner": "[IP]"}}
    assert redact_payload(b"not json: jane@example.org", "pii") == b"not json: [EMAIL]"
    assert redact_payload(b"anything", "drop") == b"" and redact_payload(b"kept", "none") == b"kept"


def test_a_letter_says_it_was_redacted_and_its_error_text_is_redacted_too() -> None:
    letter = DeadLetter(tenant="t", service="ingest", original_subject="gyre.ingest.submitted",
                        payload=base64.b64encode(b'{"text": "jane@example.org"}').decode(),
                        error="bad value 'jane@example.org'", attempts=1)
    redacted = redact_dead_letter(letter, "pii")
    assert redacted.headers[REDACTED_HEADER] == "pii" and "jane" not in redacted.error
    assert b"jane" not in base64.b64decode(redacted.payload)
    assert redact_dead_letter(redacted, "pii") is redacted  # done once
    assert redact_dead_letter(letter, "none") is letter


def test_a_letter_with_nothing_personal_stays_byte_for_byte_replayable() -> None:
    body = b'{ "type": "gyre.ingest.submitted.v1",  "text": "plain words" }'
    assert redact_payload(body, "pii") is body and redact_payload(b"\xff\xfe", "pii") == b"\xff\xfe"
    letter = DeadLetter(tenant="t", service="ingest", original_subject="gyre.ingest.submitted",
                        payload=base64.b64encode(body).decode(), error="bad", attempts=1)
    assert redact_dead_letter(letter, "pii") is letter
