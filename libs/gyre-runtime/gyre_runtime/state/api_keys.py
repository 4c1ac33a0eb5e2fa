"""API keys in the ``gyre_api_keys`` bucket, stored by the sha256 of the key: the key itself is never kept.

A key is ``gyre-`` + 36 random bytes (base64url), so a plain sha256 is enough: a slow KDF (bcrypt,
argon2) protects guessable passwords, and 288 random bits are not guessable. Its first 13 characters
are the ``key_id`` operators see (``gyre keys list``) and revoke by; the other 240 bits stay secret.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Literal, cast, get_args

import msgspec
from nats.js.errors import NoKeysError

from gyre_contracts import utc_now
from gyre_contracts.limits import TENANT_ID_RULE, is_tenant_id
from gyre_runtime.state import buckets
from gyre_runtime.state.kv_store import KvStore, create, read

Scope = Literal["ingest", "query", "feedback", "admin"]
SCOPES: tuple[Scope, ...] = get_args(Scope)

KEY_PREFIX = "gyre-"
KEY_RANDOM_BYTES = 36  # 48 base64url characters
KEY_ID_RANDOM_CHARS = 8  # shown to operators: 48 of the 288 random bits
KEY_LENGTH = len(KEY_PREFIX) + 4 * KEY_RANDOM_BYTES // 3


def scopes_allow(scopes: tuple[Scope, ...], scope: Scope) -> bool:
    """Whether a key with ``scopes`` may use an endpoint needing ``scope``: ``admin`` may use every one."""
    return "admin" in scopes or scope in scopes


class ApiKeyError(ValueError):
    """A key that cannot be created as asked (unknown scope, empty tenant, bad rate limit)."""


class ApiKeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str  # the key's first characters: what operators see and revoke by
    hash: str  # sha256 hex of the whole key; also the record's KV key
    tenant: str
    scopes: tuple[Scope, ...]
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None
    rate_limit_per_minute: int | None = None  # None: the gateway's GYRE_RATE_LIMIT_PER_MINUTE

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def allows(self, scope: Scope) -> bool:
        return scopes_allow(self.scopes, scope)


_decoder = msgspec.json.Decoder(ApiKeyRecord)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def key_id_of(key: str) -> str:
    return key[: len(KEY_PREFIX) + KEY_ID_RANDOM_CHARS]


def looks_like_stored_key(presented: str) -> bool:
    """Whether ``presented`` has the shape of a key ``gyre keys create`` makes (else no lookup is worth it)."""
    return len(presented) == KEY_LENGTH and presented.startswith(KEY_PREFIX)


def parse_scopes(text: str) -> tuple[Scope, ...]:
    """``query,feedback`` -> ("query", "feedback"); unknown or no scopes -> ApiKeyError."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SCOPES]
    if unknown:
        raise ApiKeyError(f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}")
    if not names:
        raise ApiKeyError(f"give at least one scope: {', '.join(SCOPES)}")
    return tuple(cast(Scope, s) for s in dict.fromkeys(names))


def new_record(
    key: str, tenant: str, scopes: tuple[Scope, ...], rate_limit_per_minute: int | None = None
) -> ApiKeyRecord:
    if not tenant.strip():
        raise ApiKeyError("the tenant must not be empty")
    if not is_tenant_id(tenant.strip()):
        raise ApiKeyError(f"the tenant {tenant.strip()!r} is not a valid tenant id: {TENANT_ID_RULE}")
    if not scopes or any(s not in SCOPES for s in scopes):
        raise ApiKeyError(f"scopes must be some of {', '.join(SCOPES)}")
    if rate_limit_per_minute is not None and rate_limit_per_minute < 1:
        raise ApiKeyError("the rate limit must be at least 1 request per minute (omit it for the default)")
    return ApiKeyRecord(
        key_id=key_id_of(key),
        hash=hash_key(key),
        tenant=tenant.strip(),
        scopes=scopes,
        created_at=utc_now(),
        rate_limit_per_minute=rate_limit_per_minute,
    )


class ApiKeyStore(KvStore):
    """Create, find, list and revoke keys in the bucket; records are keyed by the key's hash."""

    bucket = buckets.API_KEYS

    async def create(
        self, tenant: str, scopes: tuple[Scope, ...], rate_limit_per_minute: int | None = None
    ) -> tuple[str, ApiKeyRecord]:
        """A new key and its record; the key is returned once and stored nowhere."""
        taken = {r.key_id for r in await self.list()}
        while True:
            key = new_key()
            record = new_record(key, tenant, scopes, rate_limit_per_minute)
            if record.key_id in taken:  # 48 random bits: a clash is rare, but key ids must stay unique
                continue
            if await create(self.kv, record.hash, msgspec.json.encode(record)):
                return key, record

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        return (await read(self.kv, key_hash, _decoder.decode)).value

    async def find(self, key: str) -> ApiKeyRecord | None:
        """The record of a presented key (revoked ones included: the caller decides)."""
        return await self.get_by_hash(hash_key(key))

    async def list(self, tenant: str | None = None) -> list[ApiKeyRecord]:
        try:
            hashes = await self.kv.keys()
        except NoKeysError:
            return []
        records = [r for r in [await self.get_by_hash(h) for h in hashes] if r is not None]
        if tenant is not None:
            records = [r for r in records if r.tenant == tenant]
        return sorted(records, key=lambda r: (r.tenant, r.created_at))

    async def revoke(self, key_id: str) -> ApiKeyRecord | None:
        """Mark the key revoked (kept for the record); None if no key has this id. Revoking twice is a no-op."""
        for record in await self.list():
            if record.key_id == key_id:
                if record.revoked:
                    return record
                revoked = msgspec.structs.replace(record, revoked_at=utc_now())
                await self.kv.put(record.hash, msgspec.json.encode(revoked))
                return revoked
        return None
