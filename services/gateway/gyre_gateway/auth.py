"""API keys -> tenants: ``Authorization: Bearer <key>`` on every /v1 route, keys from settings and a key file."""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gyre_gateway.errors import ApiError
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger

log = get_logger()

DEFAULT_TENANT = "default"
KEY_FILE_NAME = "api-key"


def parse_key_entry(entry: str) -> tuple[str, str] | None:
    """``key:tenant`` -> (key, tenant); a bare ``key`` belongs to the default tenant; blank -> None.

    Split at the last colon, so a key may itself contain colons when a tenant is given.
    """
    entry = entry.strip()
    if not entry or entry.startswith("#"):
        return None
    if ":" not in entry:
        return entry, DEFAULT_TENANT
    key, _, tenant = entry.rpartition(":")
    key, tenant = key.strip(), tenant.strip()
    if not key:
        return None
    return key, tenant or DEFAULT_TENANT


def parse_key_list(text: str) -> dict[str, str]:
    """``GYRE_API_KEYS``: ``key1:tenant-a,key2:tenant-b`` -> {key: tenant}."""
    return dict(e for e in map(parse_key_entry, text.split(",")) if e is not None)


def parse_key_file(text: str) -> dict[str, str]:
    """A key file: one ``key:tenant`` (or bare ``key``) per line; blank lines and ``#`` comments skipped."""
    return dict(e for e in map(parse_key_entry, text.splitlines()) if e is not None)


def key_file_path(settings: Settings) -> Path:
    return Path(settings.api_key_file).expanduser() if settings.api_key_file else settings.data_path / KEY_FILE_NAME


def find_tenant(keys: dict[str, str], presented: str) -> str | None:
    """The tenant of ``presented``; every key is compared in constant time, so timing says nothing."""
    found: str | None = None
    candidate = presented.encode()
    for key, tenant in keys.items():
        if hmac.compare_digest(key.encode(), candidate):
            found = tenant
    return found


@dataclass
class _FileState:
    stamp: tuple[int, int] | None = None  # (mtime_ns, size) of the file last read
    keys: dict[str, str] | None = None


class ApiKeyring:
    """The keys the gateway accepts. The key file is re-read when it changes, so keys rotate without a restart."""

    def __init__(self, settings: Settings) -> None:
        self.inline = parse_key_list(settings.api_keys)
        self.path = key_file_path(settings)
        self._file = _FileState()

    def _file_keys(self) -> dict[str, str]:
        try:
            stat = os.stat(self.path)
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._file.stamp or self._file.keys is None:
            try:
                keys = parse_key_file(self.path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("api_key_file_unreadable", path=str(self.path), error=type(exc).__name__)
                return {}
            self._file = _FileState(stamp=stamp, keys=keys)
        return self._file.keys or {}

    def keys(self) -> dict[str, str]:
        return {**self._file_keys(), **self.inline}

    def tenant_for(self, presented: str) -> str | None:
        return find_tenant(self.keys(), presented)


bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key from GYRE_API_KEYS or the key file (`<data dir>/api-key`); it decides the tenant.",
)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message, code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


async def caller_tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """FastAPI dependency: the caller's tenant, or 401 in the OpenAI error format."""
    keyring: ApiKeyring = request.app.state.keyring
    if credentials is None or not credentials.credentials:
        raise unauthorized("missing API key: send the header `Authorization: Bearer <key>`")
    keys = keyring.keys()
    if not keys:
        raise unauthorized(
            f"no API keys are configured: set GYRE_API_KEYS or write `key:tenant` lines to {keyring.path}"
        )
    tenant = find_tenant(keys, credentials.credentials)
    if tenant is None:
        raise unauthorized("invalid API key")
    structlog.contextvars.bind_contextvars(tenant=tenant)
    return tenant


Tenant = Annotated[str, Depends(caller_tenant)]
