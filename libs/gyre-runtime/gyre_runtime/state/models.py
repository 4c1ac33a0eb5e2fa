"""The model registry: which model versions the running services serve (read by the gateway's /v1/models)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec
from nats.js.errors import NoKeysError

from gyre_contracts import utc_now
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_store import KvStore


class ModelEntry(msgspec.Struct, kw_only=True):
    id: str  # what clients put in `model`, e.g. "smollm2-135m-instruct"
    kind: Literal["embedding", "generation"]
    version: str  # name:version:sha256 prefix, as recorded in events
    served_by: str
    registered_at: dt.datetime = msgspec.field(default_factory=utc_now)


_decoder = msgspec.json.Decoder(ModelEntry)


class ModelRegistry(KvStore):
    bucket = buckets.MODELS

    async def register(self, entry: ModelEntry) -> None:
        await self.kv.put(encode_key_part(entry.id), msgspec.json.encode(entry))

    async def list(self) -> list[ModelEntry]:
        entries = []
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return []
        for key in keys:
            entry = await self.kv.get(key)
            if entry.value:
                entries.append(_decoder.decode(entry.value))
        return sorted(entries, key=lambda e: e.id)
