"""Refuse request bodies too large to be a valid request before they are read into memory."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gyre_gateway.errors import ApiError, error_response

# JSON escaping can make text several times longer than its characters (``\u00e9`` is six bytes for
# one); base64 adds a third. Eight bytes per allowed character leaves room for both.
BYTES_PER_DOCUMENT_CHAR = 8
HEADROOM_BYTES = 1 << 20


def max_body_bytes(max_document_chars: int) -> int:
    return BYTES_PER_DOCUMENT_CHAR * max_document_chars + HEADROOM_BYTES


class BodySizeLimitMiddleware:
    """413 for a declared ``Content-Length`` above the limit (the per-field checks catch the rest)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = dict(scope.get("headers") or []).get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
                error = ApiError(
                    413,
                    f"request body of {int(declared)} bytes is over the gateway's limit of {self.max_bytes} "
                    "(set by GYRE_MAX_DOCUMENT_CHARS); split the document",
                    code="request_too_large",
                )
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)
