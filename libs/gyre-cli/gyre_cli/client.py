"""A small client of the gateway's document API, for the CLI and the local stack."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import httpx

TEXT_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain"}


def find_documents(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in TEXT_TYPES)
        elif path.is_file():
            found.append(path)
    return found


class GatewayClient:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 60.0) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )

    def submit_file(self, path: Path, document_id: str) -> dict[str, object]:
        content_type = TEXT_TYPES.get(path.suffix.lower(), "text/plain")
        response = self.http.post(
            "/v1/documents",
            json={"id": document_id, "text": path.read_text(encoding="utf-8", errors="replace"),
                  "content_type": content_type, "title": path.stem, "metadata": {"path": str(path)}},
        )
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def status(self, document_id: str) -> dict[str, object]:
        response = self.http.get(f"/v1/documents/{document_id}")
        response.raise_for_status()
        result: dict[str, object] = response.json()
        return result

    def wait_until_settled(self, document_ids: Iterable[str], timeout_s: float = 300.0) -> dict[str, str]:
        """Poll until every document is indexed or rejected; returns id -> final status."""
        pending = set(document_ids)
        final: dict[str, str] = {}
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for document_id in sorted(pending):
                status = str(self.status(document_id)["status"])
                if status in ("indexed", "rejected", "deleted"):
                    final[document_id] = status
                    pending.discard(document_id)
            if pending:
                time.sleep(0.25)
        for document_id in pending:
            final[document_id] = "pending"
        return final
