"""Per-tenant policies: what to do with personal data and duplicates, overriding the settings' defaults."""

from __future__ import annotations

import msgspec
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from gyre_runtime.config import DuplicatePolicy, Settings
from gyre_runtime.guardrails.pii import PiiPolicy
from gyre_runtime.state.keys import encode_key_part

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
