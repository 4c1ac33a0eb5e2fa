"""Improve's handler: FeedbackRecorded -> tallies per prompt version and per model in a KV bucket."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from nats.js.errors import NoKeysError

from gyre_contracts import FeedbackRecorded
from gyre_improve.tallies import Tally, add_rating
from gyre_runtime.bus.consumer import MessageContext
from gyre_runtime.logging import get_logger
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import decode_key_part, encode_key_part
from gyre_runtime.state.kv_store import KvStore, compare_and_set

log = get_logger()
_decoder = msgspec.json.Decoder(Tally)


def tally_key(kind: str, tenant: str, version: str) -> str:
    return f"{kind}.{encode_key_part(tenant)}.{encode_key_part(version)}"


class TallyStore(KvStore):
    bucket = buckets.FEEDBACK_TALLIES

    async def add(self, key: str, subject: str, feedback_id: str, rating: int) -> None:
        await compare_and_set(
            self.kv, key, lambda current: add_rating(current or Tally(subject=subject), feedback_id, rating),
            decode=_decoder.decode, what=f"tally {key}",
        )

    async def all(self) -> dict[str, dict[str, object]]:
        out: dict[str, dict[str, object]] = {}
        try:
            keys = await self.kv.keys()
        except NoKeysError:
            return out
        for key in keys:
            entry = await self.kv.get(key)
            tally = _decoder.decode(entry.value or b"{}")
            kind, tenant, _ = key.split(".", 2)
            out[key] = {
                "kind": kind, "tenant": decode_key_part(tenant), "subject": tally.subject, "count": tally.count,
                "positive": tally.positive, "negative": tally.negative, "neutral": tally.neutral,
                "mean_rating": tally.rating_sum / tally.count if tally.count else None,
            }
        return out


@dataclass
class ImproveHandler:
    tallies: TallyStore

    async def __call__(self, event: FeedbackRecorded, ctx: MessageContext) -> None:
        for kind, version in (("prompt", event.prompt_version), ("model", event.model_version)):
            await self.tallies.add(tally_key(kind, event.tenant, version), version, event.feedback_id, event.rating)
        log.info("feedback_tallied", request_id=event.request_id, tenant=event.tenant)
