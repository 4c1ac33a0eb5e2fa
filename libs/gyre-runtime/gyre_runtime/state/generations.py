"""Generation records by request id, for joining feedback to the answer it rates."""

from __future__ import annotations

import msgspec

from gyre_contracts import GenerationCompleted
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_store import KvStore, read

_decoder = msgspec.json.Decoder(GenerationCompleted)


class GenerationStore(KvStore):
    bucket = buckets.GENERATIONS

    async def put(self, completed: GenerationCompleted) -> None:
        await self.kv.put(encode_key_part(completed.request_id), msgspec.json.encode(completed))

    async def get(self, request_id: str) -> GenerationCompleted | None:
        return (await read(self.kv, encode_key_part(request_id), _decoder.decode)).value
