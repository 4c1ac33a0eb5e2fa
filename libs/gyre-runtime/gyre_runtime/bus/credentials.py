"""NATS credentials: one user and password per identity in a 0600 file, the server config holding bcrypt hashes.

Layout (``gyre up`` makes it under the data dir; ``gyre bus credentials init --dir`` anywhere else)::

    <dir>/admin.json              the operator: the `gyre` CLI and the topology step
    <dir>/<service>.json          one per service: gateway, ingest, embed, ...
    <dir>/publisher-<tenant>.json external systems publishing documents for one tenant

Each file is ``{"user": ..., "password": ..., "bcrypt": ...}``: the process that connects reads the
password, the server config gets only the hash (``render_authorization``). Files are kept across
runs; deleting one and rendering again rotates that identity's secret.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

import bcrypt

from gyre_runtime.bus.permissions import (
    ADMIN,
    PUBLISHER_PREFIX,
    SERVICES,
    IdentityError,
    Naming,
    permissions_for,
    publisher_identity,
    render_permissions,
)

# nats-server's own `passwd` tool uses cost 11: about 0.1 s per connect on the server, none at rest.
BCRYPT_COST = 11


@dataclass(frozen=True)
class Credential:
    """One identity's user name and password, and the bcrypt hash the server checks it against."""

    user: str
    password: str
    bcrypt: str

    def to_json(self) -> bytes:
        return json.dumps({"user": self.user, "password": self.password, "bcrypt": self.bcrypt}, indent=1).encode()


class CredentialError(ValueError):
    """A credential file that is missing or unreadable (the message names it and what to do)."""


def default_credentials_dir(data_dir: Path) -> Path:
    return data_dir / "credentials" / "nats"


def credential_path(directory: Path, identity: str) -> Path:
    return directory / f"{identity}.json"


def new_credential(identity: str) -> Credential:
    password = secrets.token_urlsafe(32)
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    return Credential(user=identity, password=password, bcrypt=hashed)


def read_credential(path: Path) -> Credential:
    try:
        raw = json.loads(path.read_text())
        return Credential(user=str(raw["user"]), password=str(raw["password"]), bcrypt=str(raw.get("bcrypt", "")))
    except FileNotFoundError as exc:
        raise CredentialError(f"NATS credential file {path} does not exist (GYRE_NATS_CREDENTIALS_FILE)") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialError(
            f"NATS credential file {path} is not a {{\"user\", \"password\"}} JSON object: {exc}"
        ) from exc


def _write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only, from the first byte on (no window with wider rights)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(0o600)


def ensure_credential(directory: Path, identity: str) -> Credential:
    """The identity's credential, created on first use and kept afterwards."""
    permissions_for(identity)  # refuses unknown identities and bad tenants before anything is written
    path = credential_path(directory, identity)
    if path.exists():
        credential = read_credential(path)
        if credential.bcrypt:
            return credential
        # A file an operator wrote with a password of their choosing: keep it, add its hash.
        hashed = bcrypt.hashpw(credential.password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
        credential = Credential(user=credential.user, password=credential.password, bcrypt=hashed)
    else:
        credential = new_credential(identity)
    _write_private(path, credential.to_json())
    return credential


def ensure_stack_credentials(directory: Path) -> dict[str, Credential]:
    """The operator's and every service's credential (what ``gyre up`` and a deployment need)."""
    return {identity: ensure_credential(directory, identity) for identity in (ADMIN, *SERVICES)}


def add_publisher(directory: Path, tenant: str) -> Credential:
    """A credential for an external system: DocumentSubmitted for ``tenant`` only."""
    return ensure_credential(directory, publisher_identity(tenant))


def known_credentials(directory: Path) -> dict[str, Credential]:
    """Every credential in ``directory`` by identity, the stack's first, then publishers by name."""
    found: dict[str, Credential] = {}
    for identity in (ADMIN, *SERVICES):
        path = credential_path(directory, identity)
        if path.exists():
            found[identity] = read_credential(path)
    for path in sorted(directory.glob(f"{PUBLISHER_PREFIX}*.json")):
        found[path.stem] = read_credential(path)
    return found


def render_authorization(credentials: dict[str, Credential], naming: Naming | None = None) -> str:
    """nats-server's ``authorization`` block: one user per identity, its bcrypt hash, its permissions.

    No ``no_auth_user`` and no anonymous user: a connection without a known user is refused.
    """
    if not credentials:
        raise IdentityError("no credentials to render: an authorization block without users would let anyone in")
    lines = [
        "# Generated by Gyre (gyre_runtime.bus.credentials): users, bcrypt hashes, permissions.",
        "# Regenerate with `gyre bus credentials init`; never edit by hand.",
        "authorization {",
        "  users = [",
    ]
    for identity, credential in credentials.items():
        if credential.user != identity:
            raise IdentityError(f"credential file of {identity} names user {credential.user!r}")
        lines.append(f"    # {identity}")
        lines.append(
            f'    {{ user: "{credential.user}", password: "{credential.bcrypt}",'
            f" permissions: {render_permissions(permissions_for(identity, naming))} }}"
        )
    lines += ["  ]", "}", ""]
    return "\n".join(lines)


def write_authorization(directory: Path, target: Path, naming: Naming | None = None) -> Path:
    """Render every credential of ``directory`` into ``target`` (an include file of the server config)."""
    _write_private(target, render_authorization(known_credentials(directory), naming).encode())
    return target


def reload_server(pid_file: Path) -> bool:
    """Ask a running nats-server to re-read its config (SIGHUP), so a new credential works at once.

    False when no server runs with that pid file.
    """
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return False
    return True
