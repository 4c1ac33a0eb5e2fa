"""The document registry: status, version, reasons, chunk count and timings of every document."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Literal

import msgspec
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from gyre_contracts import Rejection
from gyre_runtime.state.keys import encode_key_part

Status = Literal["pending", "indexed", "rejected", "deleted"]


class DocumentRecord(msgspec.Struct, kw_only=True):
    document_id: str
    tenant: str
    status: Status = "pending"
    version: int = 0
    submission_id: str = ""
    content_hash: str = ""
    chunks: int = 0
    reasons: list[Rejection] = msgspec.field(default_factory=list)
    title: str = ""
    submitted_at: dt.datetime | None = None
    accepted_at: dt.datetime | None = None
    indexed_at: dt.datetime | None = None
    embedding_model: str = ""


_decoder = msgspec.json.Decoder(DocumentRecord)


def document_key(tenant: str, document_id: str) -> str:
    return f"{encode_key_part(tenant)}.{encode_key_part(document_id)}"


class DocumentRegistry:
    """Reads and compare-and-set updates of document records in the ``gyre_documents`` bucket."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, tenant: str, document_id: str) -> DocumentRecord | None:
        try:
            entry = await self.kv.get(document_key(tenant, document_id))
        except KeyNotFoundError:
            return None
        if not entry.value:
            return None
        return _decoder.decode(entry.value)

    async def update(
        self,
        tenant: str,
        document_id: str,
        change: Callable[[DocumentRecord | None], DocumentRecord | None],
    ) -> DocumentRecord | None:
        """Apply ``change`` atomically (optimistic concurrency); ``None`` from change writes nothing."""
        key = document_key(tenant, document_id)
        for _ in range(50):
            try:
                entry = await self.kv.get(key)
                current = _decoder.decode(entry.value) if entry.value else None
                revision = entry.revision
            except KeyNotFoundError:
                current, revision = None, None
            except KeyDeletedError as exc:
                current, revision = None, exc.entry.revision if exc.entry else None
            new = change(current)
            if new is None:
                return current
            data = msgspec.json.encode(new)
            try:
                if not revision:
                    await self.kv.create(key, data)
                else:
                    await self.kv.update(key, data, last=revision)
                return new
            except KeyWrongLastSequenceError:
                continue  # someone else wrote between our read and write: re-read and retry
        raise RuntimeError(f"document record {document_id!r} kept changing under us")

