"""`gyre ingest`'s state file: what was submitted for each document id, so re-runs skip what is unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gyre_cli.ingest_inputs import InputError

STATE_FILE_NAME = "ingest-state.json"
STATE_VERSION = 1


@dataclass
class StateEntry:
    """What was last submitted for a document id (sha256 of the bytes) and the verdict seen for it."""

    sha256: str
    status: str  # pending (verdict not seen yet), indexed, rejected, deleted
    reasons: list[str] = field(default_factory=list)


def state_scope(gateway_url: str, api_key: str) -> str:
    """One section of the state file per gateway and key: another gateway or tenant starts afresh."""
    return f"{gateway_url.rstrip('/')} key:{hashlib.sha256(api_key.encode()).hexdigest()[:16]}"


@dataclass
class IngestState:
    """``document id -> StateEntry`` for one scope, kept in a JSON file shared by all scopes."""

    path: Path
    scope: str
    entries: dict[str, StateEntry] = field(default_factory=dict)
    _other_scopes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path, scope: str) -> IngestState:
        """The state at ``path`` (missing -> empty). An unreadable file is an InputError, not silently reset."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(path=path, scope=scope)
        except (OSError, ValueError) as exc:
            raise InputError(f"state file {path} is unreadable ({exc}); move it away or pass --state") from exc
        scopes = raw.get("scopes", {}) if isinstance(raw, dict) else {}
        mine = scopes.pop(scope, {}) if isinstance(scopes, dict) else {}
        entries = {
            document_id: StateEntry(
                sha256=str(entry.get("sha256", "")),
                status=str(entry.get("status", "pending")),
                reasons=[str(r) for r in entry.get("reasons", [])],
            )
            for document_id, entry in (mine.get("documents") or {}).items()
            if isinstance(entry, dict)
        }
        return cls(path=path, scope=scope, entries=entries, _other_scopes=scopes if isinstance(scopes, dict) else {})

    def to_json(self) -> dict[str, Any]:
        documents = {
            document_id: {"sha256": e.sha256, "status": e.status, "reasons": e.reasons}
            for document_id, e in sorted(self.entries.items())
        }
        return {"version": STATE_VERSION, "scopes": {**self._other_scopes, self.scope: {"documents": documents}}}

    def save(self) -> None:
        """Written to a temporary file then renamed, so an interrupted write never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.to_json(), indent=1) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


Plan = Literal["submit", "skip", "ask"]


def plan_for(entry: StateEntry | None, sha256: str, *, force: bool = False) -> Plan:
    """What to do with an input whose bytes hash to ``sha256``, given what the state file says.

    - ``skip``: the same bytes were indexed before (unchanged);
    - ``ask``: the same bytes were submitted but the verdict was not seen (an interrupted run or
      ``--no-wait``): ask the gateway before resubmitting anything;
    - ``submit``: new, changed, rejected before (rules may have changed), or ``--force``.
    """
    if force or entry is None or entry.sha256 != sha256:
        return "submit"
    if entry.status == "indexed":
        return "skip"
    if entry.status == "pending":
        return "ask"
    return "submit"
