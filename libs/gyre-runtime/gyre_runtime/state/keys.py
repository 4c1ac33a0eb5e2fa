"""KV keys built from arbitrary user text: base64url, which NATS key rules accept."""

from __future__ import annotations

import base64


def encode_key_part(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "_"


def decode_key_part(part: str) -> str:
    if part == "_":
        return ""
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode()
