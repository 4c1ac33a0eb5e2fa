"""Deterministic event ids: a redelivered handler publishes the same ce-id, which JetStream drops."""

from __future__ import annotations

import hashlib


def derived_id(kind: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{kind}-{digest}"
