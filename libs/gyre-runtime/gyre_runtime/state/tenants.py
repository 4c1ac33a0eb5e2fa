"""Per-tenant policies: what to do with personal data and duplicates, overriding the settings' defaults."""

from __future__ import annotations

from typing import Literal

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from gyre_runtime.state.keys import encode_key_part

PiiPolicy = Literal["redact", "reject", "allow"]
DuplicatePolicy = Literal["reject", "keep"]


class TenantPolicy(msgspec.Struct, frozen=True, kw_only=True):
    pii: PiiPolicy = "redact"
    duplicates: DuplicatePolicy = "reject"
    near_duplicate_threshold: float = 0.9


_decoder = msgspec.json.Decoder(TenantPolicy)


class TenantPolicies:
    """Reads and writes policies in the ``gyre_tenants`` bucket; unknown tenants get ``default``."""

    def __init__(self, kv: KeyValue, default: TenantPolicy) -> None:
        self.kv = kv
        self.default = default

    async def get(self, tenant: str) -> TenantPolicy:
        try:
            entry = await self.kv.get(encode_key_part(tenant))
        except KeyNotFoundError:
            return self.default
        return _decoder.decode(entry.value) if entry.value else self.default

    async def put(self, tenant: str, policy: TenantPolicy) -> None:
        await self.kv.put(encode_key_part(tenant), msgspec.json.encode(policy))
