"""A small client of the gateway's document API, for the CLI and the local stack."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

TEXT_TYPES = {".md": "text/markdown", ".markdown": "text/markdown", ".txt": "text/plain"}

# Answers worth another try: the gateway is starting, its bus reconnecting, or it is overloaded.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
MAX_RETRY_AFTER_S = 10.0


def document_path(document_id: str) -> str:
    """The status URL path of a document; the id is percent-encoded whole (ids may hold ``/``, ``?``, ``#``)."""
    return "/v1/documents/" + quote(document_id, safe="")


def find_documents(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix.lower() in TEXT_TYPES)
        elif path.is_file():
            found.append(path)
    return found


def read_local_api_key(data_dir: Path) -> str | None:
    """The local stack's key (``<data dir>/api-key``, first line, ``key[:tenant]``); None if there is none."""
    try:
        text = (data_dir / "api-key").read_text(encoding="utf-8")
    except OSError:
        return None
    entries = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return entries[0].rsplit(":", 1)[0].strip() if entries else None


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
        response = self.http.get(document_path(document_id))
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


# ---------------------------------------------------------------- async client (gyre ingest)


class GatewayError(Exception):
    """The gateway refused a request (or could not be reached): ``code`` is what the summary counts."""

    def __init__(self, code: str, message: str, *, status: int = 0, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in RETRYABLE_STATUS


@dataclass(frozen=True)
class DocumentState:
    """What ``GET /v1/documents/{id}`` says: status, and the reasons of a rejection."""

    document_id: str
    status: str
    reasons: tuple[tuple[str, str], ...] = field(default=())  # (code, message)
    version: int = 0
    chunks: int = 0

    @property
    def settled(self) -> bool:
        return self.status in ("indexed", "rejected", "deleted")

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(code for code, _ in self.reasons)


def gateway_error(response: httpx.Response) -> GatewayError:
    """The OpenAI-format error body the gateway sends, as a GatewayError (its ``code``, else ``http_<status>``)."""
    code, message = f"http_{response.status_code}", response.text[:500]
    try:
        error = response.json().get("error") or {}
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
    except (ValueError, AttributeError):
        pass
    retry_after: float | None = None
    header = response.headers.get("retry-after")
    if header:
        try:
            retry_after = min(float(header), MAX_RETRY_AFTER_S)
        except ValueError:
            retry_after = None
    return GatewayError(code, message, status=response.status_code, retry_after_s=retry_after)


class AsyncGatewayClient:
    """Submits documents and reads their status; transient failures are retried a few times."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )
        self.retry_delays_s = retry_delays_s

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried after transport errors and 429/502/503/504 (Retry-After honoured)."""
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                error = GatewayError("connection_error", f"{type(exc).__name__}: {exc}")
            else:
                if response.status_code < 400 or response.status_code == 404:
                    return response
                error = gateway_error(response)
            if not error.retryable or attempt >= len(self.retry_delays_s):
                raise error
            await asyncio.sleep(error.retry_after_s or self.retry_delays_s[attempt])
            attempt += 1

    async def submit_content(
        self,
        document_id: str,
        data: bytes,
        *,
        content_type: str,
        title: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """``POST /v1/documents`` with the bytes as base64 ``content``; raises GatewayError unless 202."""
        body = {
            "id": document_id,
            "content": base64.b64encode(data).decode("ascii"),
            "content_type": content_type,
            "title": title,
            "metadata": metadata or {},
        }
        response = await self._request("POST", "/v1/documents", json=body)
        if response.status_code != 202:
            raise gateway_error(response)

    async def document_state(self, document_id: str) -> DocumentState | None:
        """The document's status now; None if the gateway knows no such document (404)."""
        response = await self._request("GET", document_path(document_id))
        if response.status_code == 404:
            return None
        body = response.json()
        return DocumentState(
            document_id=str(body.get("document_id", document_id)),
            status=str(body["status"]),
            reasons=tuple((str(r.get("code", "")), str(r.get("message", ""))) for r in body.get("reasons") or ()),
            version=int(body.get("version") or 0),
            chunks=int(body.get("chunks") or 0),
        )
