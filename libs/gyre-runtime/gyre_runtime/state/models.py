"""The model registry: which model versions the running services serve (read by the gateway's /v1/models).

Its entries live under ``served.`` in the bucket ``gyre_models``, beside the model hub's keys
(``version.``, ``alias.``, ``history.``: gyre_runtime.hub). Entries written before that prefix (bare
keys) are not read: every service registers its model again when it starts.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from gyre_contracts import utc_now
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_listing import current_values
from gyre_runtime.state.kv_store import KvStore, read

SERVED_PATTERN = "served.*"


class ModelEntry(msgspec.Struct, kw_only=True):
    id: str  # what clients put in `model`, e.g. "smollm2-135m-instruct"
    kind: Literal["embedding", "generation"]
    version: str  # name:version:sha256 prefix, as recorded in events
    served_by: str
    registered_at: dt.datetime = msgspec.field(default_factory=utc_now)


_decoder = msgspec.json.Decoder(ModelEntry)


def served_key(model_id: str) -> str:
    return f"served.{encode_key_part(model_id)}"


class ModelRegistry(KvStore):
    bucket = buckets.MODELS

    async def register(self, entry: ModelEntry) -> None:
        await self.kv.put(served_key(entry.id), msgspec.json.encode(entry))

    async def get(self, model_id: str) -> ModelEntry | None:
        return (await read(self.kv, served_key(model_id), _decoder.decode)).value

    async def list(self) -> list[ModelEntry]:
        entries = [_decoder.decode(e.value) for e in await current_values(self.kv, SERVED_PATTERN) if e.value]
        return sorted(entries, key=lambda e: e.id)
