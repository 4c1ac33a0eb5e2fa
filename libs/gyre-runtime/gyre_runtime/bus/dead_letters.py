"""What a dead letter keeps of the message that failed: all of it, its text without personal data, or nothing."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

import msgspec

from gyre_contracts import DeadLetter
from gyre_runtime.guardrails.pii import apply_pii_policy

Redaction = Literal["none", "pii", "drop"]

# Added to a redacted letter's copy of the original headers: says what was taken out.
REDACTED_HEADER = "gyre-redacted"
# JSON fields holding a document's raw bytes (base64): personal data in them cannot be found, so a
# redacted letter keeps none of them.
RAW_BYTES_FIELDS = frozenset({"content"})


def redact_text(text: str) -> str:
    return apply_pii_policy(text, "redact").text


def _redact_value(value: Any, key: str | None = None) -> Any:
    if isinstance(value, str):
        return "" if key in RAW_BYTES_FIELDS else redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v) for v in value]
    return value


def redact_payload(data: bytes, redaction: Redaction) -> bytes:
    """``none``: unchanged; ``drop``: empty; ``pii``: every string of a JSON body (or the text of any
    other body) with personal data replaced by placeholders, raw document bytes removed.

    A body with nothing to take out is kept byte for byte, so its letter can still be replayed.
    """
    if redaction == "none":
        return data
    if redaction == "drop":
        return b""
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError:
        text = data.decode("utf-8", "replace")
        redacted_text = redact_text(text)
        return data if redacted_text == text else redacted_text.encode("utf-8")
    redacted = _redact_value(value)
    return data if redacted == value else msgspec.json.encode(redacted)


def redact_dead_letter(letter: DeadLetter, redaction: Redaction) -> DeadLetter:
    """The letter with its payload redacted (and its error text, which may quote the payload)."""
    if redaction == "none" or letter.headers.get(REDACTED_HEADER) in (redaction, "drop"):
        return letter
    try:
        payload = base64.b64decode(letter.payload, validate=True)
    except (binascii.Error, ValueError):
        payload = letter.payload.encode("utf-8")
    redacted, error = redact_payload(payload, redaction), redact_text(letter.error)
    if redacted == payload and error == letter.error:
        return letter  # nothing personal in it: the letter stays as it was, replayable
    return msgspec.structs.replace(
        letter,
        payload=base64.b64encode(redacted).decode("ascii"),
        error=error,
        headers={**letter.headers, REDACTED_HEADER: redaction},
    )
