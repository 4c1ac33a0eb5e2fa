"""Per-tenant policies: what to do with personal data and duplicates, overriding the settings' defaults."""

from __future__ import annotations

from typing import TYPE_CHECKING, Self

import msgspec
from nats.js.kv import KeyValue

from gyre_runtime.config import DuplicatePolicy, Settings
from gyre_runtime.guardrails.pii import PiiPolicy
from gyre_runtime.state import buckets
from gyre_runtime.state.keys import encode_key_part
from gyre_runtime.state.kv_store import KvStore, read

if TYPE_CHECKING:
    from gyre_runtime.bus.connection import Bus

__all__ = ["DuplicatePolicy", "PiiPolicy", "TenantPolicies", "TenantPolicy"]


class TenantPolicy(msgspec.Struct, frozen=True, kw_only=True):
    pii: PiiPolicy = "redact"
    duplicates: DuplicatePolicy = "reject"
    near_duplicate_threshold: float = 0.9

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantPolicy:
        """The default for tenants without a policy of their own (GYRE_PII_POLICY, GYRE_DUPLICATE_POLICY, ...)."""
        return cls(
            pii=settings.pii_policy,
            duplicates=settings.duplicate_policy,
            near_duplicate_threshold=settings.near_duplicate_threshold,
        )


_decoder = msgspec.json.Decoder(TenantPolicy)


class TenantPolicies(KvStore):
    """Reads and writes policies in the ``gyre_tenants`` bucket; unknown tenants get ``default``."""

    bucket = buckets.TENANTS

    def __init__(self, kv: KeyValue, default: TenantPolicy) -> None:
        super().__init__(kv)
        self.default = default

    @classmethod
    async def open(cls, bus: Bus) -> Self:
        """The policies on ``bus``; tenants without one of their own get the bus's settings' defaults."""
        return cls(await bus.kv(cls.bucket.name), TenantPolicy.from_settings(bus.settings))

    async def get(self, tenant: str) -> TenantPolicy:
        policy = (await read(self.kv, encode_key_part(tenant), _decoder.decode)).value
        return self.default if policy is None else policy

    async def put(self, tenant: str, policy: TenantPolicy) -> None:
        await self.kv.put(encode_key_part(tenant), msgspec.json.encode(policy))
