"""The gateway's evaluation endpoints, as `gyre eval` calls them, and where the CLI's key comes from."""

from __future__ import annotations

import argparse
import os
from typing import Any
from urllib.parse import quote

import httpx

from gyre_cli.client import GatewayError, gateway_error, read_local_api_key
from gyre_runtime.config import Settings, load_settings

DEFAULT_GATEWAY_URL = "http://127.0.0.1:8080"
JSONL_MEDIA_TYPE = "application/x-ndjson"


class EvalClient:
    """The gateway's evaluation endpoints; every refusal is a GatewayError with the gateway's message."""

    def __init__(
        self, base_url: str, api_key: str | None, *, transport: httpx.BaseTransport | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # Checked here, not at start: `synth` without --put needs no key.
        if not self.api_key:
            raise GatewayError(
                "no_api_key", "no API key: pass --key, set GYRE_API_KEY, or start the local stack (`gyre up`)"
            )
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise GatewayError("connection_error", f"cannot reach the gateway at {self.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise gateway_error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = self._request(method, path, **kwargs).json()
        return body

    def put_set(self, name: str, data: bytes) -> dict[str, Any]:
        return self._json(
            "PUT", f"/v1/evaluations/sets/{quote(name, safe='')}", content=data,
            headers={"Content-Type": JSONL_MEDIA_TYPE},
        )

    def sets(self) -> list[dict[str, Any]]:
        sets: list[dict[str, Any]] = self._json("GET", "/v1/evaluations/sets")["sets"]
        return sets

    def golden_set(self, name: str, version: int = 0) -> dict[str, Any]:
        return self._json("GET", f"/v1/evaluations/sets/{quote(name, safe='')}", params=_version(version))

    def export_set(self, name: str, version: int = 0) -> bytes:
        path = f"/v1/evaluations/sets/{quote(name, safe='')}/export"
        return self._request("GET", path, params=_version(version)).content

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        return self._json("POST", "/v1/evaluations", json=body)

    def evaluation(self, evaluation_id: str, *, items: bool = False) -> dict[str, Any]:
        params = {"items": "true" if items else "false"}
        return self._json("GET", f"/v1/evaluations/{quote(evaluation_id, safe='')}", params=params)

    def report(self, evaluation_id: str) -> bytes:
        return self._request("GET", f"/v1/evaluations/{quote(evaluation_id, safe='')}/report").content

    def chart(self, evaluation_id: str) -> bytes:
        return self._request("GET", f"/v1/evaluations/{quote(evaluation_id, safe='')}/chart.png").content


def _version(version: int) -> dict[str, int]:
    return {"version": version} if version else {}


def client_from(args: argparse.Namespace, settings: Settings | None = None) -> EvalClient:
    key = args.key or os.environ.get("GYRE_API_KEY") or read_local_api_key((settings or load_settings()).data_path)
    return EvalClient(args.url, key)

