"""Operator credentials: the static API keys (settings, key file) and the metrics token that opens operational routes.

Operational routes (``/metrics`` of every process, the services' ``/stats`` and ``/tallies``) show
figures of every tenant, so they are closed unless the caller sends ``Authorization: Bearer`` with

- the metrics token (``GYRE_METRICS_TOKEN``, or the first line of ``GYRE_METRICS_TOKEN_FILE``): a
  credential for a scraper such as Prometheus that opens nothing else, or
- an operator key: one of ``GYRE_API_KEYS`` or of the key file (``<data dir>/api-key``), the keys
  that have every scope at the gateway. The local stack's services share the data dir, so the key
  ``gyre up`` prints opens them.

Files are re-read when they change, so a key or token rotates without a restart.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

from gyre_contracts.limits import TENANT_ID_RULE, is_tenant_id
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger

log = get_logger()

DEFAULT_TENANT = "default"
KEY_FILE_NAME = "api-key"

# What a refused caller is told: how to get in, never what the credentials are.
ACCESS_HINT = (
    "send `Authorization: Bearer <token>` with the metrics token (GYRE_METRICS_TOKEN or GYRE_METRICS_TOKEN_FILE) "
    "or an operator key (GYRE_API_KEYS, the key file `<data dir>/api-key`)"
)


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
    tenant = tenant or DEFAULT_TENANT
    if not is_tenant_id(tenant):
        # Its events would be refused by every service (the tenant goes into subjects and keys).
        raise ValueError(f"tenant {tenant!r} of an API key is not a valid tenant id: {TENANT_ID_RULE}")
    return key, tenant


def parse_key_list(text: str) -> dict[str, str]:
    """``GYRE_API_KEYS``: ``key1:tenant-a,key2:tenant-b`` -> {key: tenant}. A bad tenant raises ValueError."""
    return dict(e for e in map(parse_key_entry, text.split(",")) if e is not None)


def parse_key_file(text: str) -> dict[str, str]:
    """A key file: one ``key:tenant`` (or bare ``key``) per line; blank lines and ``#`` comments skipped.

    A line with an invalid tenant is skipped and logged: the file is re-read while serving, and one
    bad line must not close every key.
    """
    keys: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = parse_key_entry(line)
        except ValueError as exc:
            log.error("api_key_line_skipped", line=number, error=str(exc))
            continue
        if entry is not None:
            keys[entry[0]] = entry[1]
    return keys


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


class WatchedFile:
    """A small text file read again only when its modification time or size changed; None while unreadable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._text: str | None = None

    def read(self) -> str | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp or self._text is None:
            try:
                self._text = self.path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                log.warning("credential_file_unreadable", path=str(self.path), error=type(exc).__name__)
                return None
            self._stamp = stamp
        return self._text


class OperatorKeys:
    """Keys from settings and the key file. The file is re-read when it changes, so keys rotate without a restart."""

    def __init__(self, settings: Settings) -> None:
        self.inline = parse_key_list(settings.api_keys)
        self.path = key_file_path(settings)
        self._file = WatchedFile(self.path)

    def keys(self) -> dict[str, str]:
        text = self._file.read()
        return {**(parse_key_file(text) if text else {}), **self.inline}

    def tenant_for(self, presented: str) -> str | None:
        return find_tenant(self.keys(), presented)


def bearer_token(authorization: str | None) -> str | None:
    """The credential of an ``Authorization: Bearer <credential>`` header; None for any other header."""
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    return credential if scheme.lower() == "bearer" and credential else None


class OperatorAccess:
    """Decides whether a request may read an operational route of this process."""

    def __init__(self, settings: Settings) -> None:
        self.keys = OperatorKeys(settings)
        self.inline_token = settings.metrics_token.strip()
        self._token_file = WatchedFile(Path(settings.metrics_token_file).expanduser()) if settings.metrics_token_file \
            else None

    def metrics_token(self) -> str | None:
        if self.inline_token:
            return self.inline_token
        if self._token_file is not None:
            text = self._token_file.read()
            lines = text.strip().splitlines() if text else []
            return lines[0].strip() if lines and lines[0].strip() else None
        return None

    def allows(self, authorization: str | None) -> bool:
        presented = bearer_token(authorization)
        if presented is None:
            return False
        token = self.metrics_token()
        token_matches = token is not None and hmac.compare_digest(token.encode(), presented.encode())
        return token_matches or self.keys.tenant_for(presented) is not None
