"""Generation records by request id, for joining feedback to the answer it rates."""

from __future__ import annotations

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from gyre_contracts import GenerationCompleted
from gyre_runtime.state.keys import encode_key_part

_decoder = msgspec.json.Decoder(GenerationCompleted)


class GenerationStore:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def put(self, completed: GenerationCompleted) -> None:
        await self.kv.put(encode_key_part(completed.request_id), msgspec.json.encode(completed))

    async def get(self, request_id: str) -> GenerationCompleted | None:
        try:
            entry = await self.kv.get(encode_key_part(request_id))
        except KeyNotFoundError:
            return None
        return _decoder.decode(entry.value) if entry.value else None
