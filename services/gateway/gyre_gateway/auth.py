"""API keys -> callers: ``Authorization: Bearer <key>`` on every /v1 route, its tenant, scopes and rate limit.

Keys come from three places, looked up in this order:

- ``GYRE_API_KEYS`` and the key file (``<data dir>/api-key``): operator keys of the local stack and
  of tests, with every scope;
- the ``gyre_api_keys`` bucket (``gyre keys create``): found by the sha256 of the presented key,
  cached for ``GYRE_API_KEY_CACHE_S`` so that a revoke takes effect within that many seconds.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import nats.errors
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gyre_gateway.errors import ApiError, bus_hiccup, retry_later
from gyre_gateway.rate_limit import RateLimiter
from gyre_gateway.upstream import connected, service_of
from gyre_runtime.logging import get_logger
from gyre_runtime.operator_access import ACCESS_HINT, OperatorAccess, OperatorKeys, find_tenant
from gyre_runtime.state.api_keys import (
    SCOPES,
    ApiKeyRecord,
    ApiKeyStore,
    Scope,
    hash_key,
    looks_like_stored_key,
    scopes_allow,
)

log = get_logger()

CACHED_KEYS_MAX = 10_000  # looked-up hashes kept (unknown ones too, so a bad key does not hit the bucket each time)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant the key belongs to, what it may do, how often."""

    tenant: str
    key_id: str  # never the key: safe to log and to key the rate limiter on
    scopes: tuple[Scope, ...]
    rate_limit_per_minute: int | None  # None: the gateway's default

    def allows(self, scope: Scope) -> bool:
        return scopes_allow(self.scopes, scope)


def static_caller(presented: str, tenant: str) -> Caller:
    """A key from settings or the key file: every scope, the default rate limit."""
    return Caller(tenant=tenant, key_id="static-" + hash_key(presented)[:8], scopes=SCOPES, rate_limit_per_minute=None)


def stored_caller(record: ApiKeyRecord) -> Caller:
    return Caller(
        tenant=record.tenant,
        key_id=record.key_id,
        scopes=record.scopes,
        rate_limit_per_minute=record.rate_limit_per_minute,
    )


class ApiKeyring(OperatorKeys):
    """Keys from settings and the key file (the operator keys, with every scope)."""


class StoredKeys:
    """Records of the ``gyre_api_keys`` bucket by key hash, each trusted for ``ttl_s`` after it was read.

    A cache with a short TTL rather than a KV watch: nothing to resubscribe after a reconnect, and
    the cost is one KV read per key per TTL. Unknown hashes are cached too (bounded, oldest dropped).
    """

    def __init__(
        self, ttl_s: float, *, clock: Callable[[], float] = time.monotonic, max_entries: int = CACHED_KEYS_MAX
    ) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self.max_entries = max_entries
        self._cache: OrderedDict[str, tuple[float, ApiKeyRecord | None]] = OrderedDict()

    def cached(self, key_hash: str) -> tuple[bool, ApiKeyRecord | None]:
        """(fresh, record) from the cache; ``fresh`` is False when the bucket must be asked."""
        hit = self._cache.get(key_hash)
        if hit is None or self.clock() - hit[0] >= self.ttl_s:
            return False, None
        return True, hit[1]

    def remember(self, key_hash: str, record: ApiKeyRecord | None) -> None:
        self._cache[key_hash] = (self.clock(), record)
        self._cache.move_to_end(key_hash)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def lookup(self, request: Request, presented: str) -> ApiKeyRecord | None:
        key_hash = hash_key(presented)
        fresh, record = self.cached(key_hash)
        if fresh:
            return record
        service = connected(service_of(request))  # 503 while the bus is down: the key cannot be checked
        try:
            record = await (await ApiKeyStore.open(service.bus)).get_by_hash(key_hash)
        except (nats.errors.Error, TimeoutError) as exc:
            what_failed = "cannot check the API key: the key store did not answer"
            raise bus_hiccup(what_failed, exc, code="key_store_unavailable") from exc
        self.remember(key_hash, record)
        return record


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key from `gyre keys create`, GYRE_API_KEYS or the key file (`<data dir>/api-key`); "
    "it decides the tenant and what the caller may do (scopes: ingest, query, feedback, admin).",
)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def authenticated_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Caller:
    """FastAPI dependency: the caller behind the key, or 401 in the OpenAI error format."""
    keyring: ApiKeyring = request.app.state.keyring
    if credentials is None or not credentials.credentials:
        raise unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
    presented = credentials.credentials
    static_keys = keyring.keys()
    tenant = find_tenant(static_keys, presented)
    if tenant is not None:
        caller = static_caller(presented, tenant)
    elif looks_like_stored_key(presented):
        stored: StoredKeys = request.app.state.stored_keys
        record = await stored.lookup(request, presented)
        if record is None:
            raise unauthorized("invalid API key")
        if record.revoked:
            raise unauthorized(f"API key {record.key_id} was revoked; ask for a new one")
        caller = stored_caller(record)
    elif not static_keys:
        raise unauthorized(
            f"invalid API key; create one with `gyre keys create --tenant T --scopes query`, set GYRE_API_KEYS, "
            f"or write `key:tenant` lines to {keyring.path}"
        )
    else:
        raise unauthorized("invalid API key")
    structlog.contextvars.bind_contextvars(tenant=caller.tenant, key_id=caller.key_id)
    return caller


def forbidden(caller: Caller, scope: Scope) -> ApiError:
    return ApiError(
        403,
        f"API key {caller.key_id} lacks the scope `{scope}` this endpoint needs (it has: {', '.join(caller.scopes)})",
        code="insufficient_scope",
    )


def rate_limited(
    caller: Caller, limit: int, wait_s: float, *, unit: str = "requests", name: str = "rate limit"
) -> ApiError:
    """The 429 for a key over one of its per-minute limits (``limit`` ``unit`` a minute)."""
    message = f"{name} of {limit} {unit} per minute reached for API key {caller.key_id}; retry after {wait_s:.1f}s"
    return retry_later(429, message, code="rate_limit_exceeded", after_s=wait_s)


def admit(request: Request, caller: Caller, scope: Scope) -> None:
    """403 unless the caller's key has ``scope``; 429 once it is over its rate (a refused request uses none)."""
    if not caller.allows(scope):
        raise forbidden(caller, scope)
    limit = caller.rate_limit_per_minute or request.app.state.service.settings.rate_limit_per_minute
    if limit:
        limiter: RateLimiter = request.app.state.rate_limiter
        wait_s = limiter.acquire(caller.key_id, limit)
        if wait_s > 0:
            raise rate_limited(caller, limit, wait_s)


def caller_with_scope(scope: Scope) -> Callable[[Request, Caller], Awaitable[Caller]]:
    """A dependency: the caller once its key has ``scope`` (else 403) and is within its rate (else 429)."""

    async def dependency(request: Request, caller: Annotated[Caller, Depends(authenticated_caller)]) -> Caller:
        admit(request, caller, scope)
        return caller

    dependency.__name__ = f"caller_with_{scope}_scope"
    return dependency


def tenant_with_scope(scope: Scope) -> Callable[[Request, Caller], Awaitable[str]]:
    """A dependency: the caller's tenant once its key has ``scope`` (else 403) and is within its rate (else 429)."""

    async def dependency(request: Request, caller: Annotated[Caller, Depends(authenticated_caller)]) -> str:
        admit(request, caller, scope)
        return caller.tenant

    dependency.__name__ = f"tenant_with_{scope}_scope"
    return dependency


# The tenant of a caller allowed to use the endpoint; ``admin`` keys may use every one.
IngestTenant = Annotated[str, Depends(tenant_with_scope("ingest"))]
QueryTenant = Annotated[str, Depends(tenant_with_scope("query"))]
FeedbackTenant = Annotated[str, Depends(tenant_with_scope("feedback"))]
QueryCaller = Annotated[Caller, Depends(caller_with_scope("query"))]


async def require_operator(request: Request) -> None:
    """FastAPI dependency of operational routes (``/metrics``): the metrics token or an operator key, else 401."""
    access: OperatorAccess = request.app.state.operator_access
    if not access.allows(request.headers.get("authorization")):
        raise ApiError(
            401,
            f"{request.url.path} is for operators: {ACCESS_HINT}",
            code="operator_credential_required",
            headers={"WWW-Authenticate": "Bearer"},
        )
