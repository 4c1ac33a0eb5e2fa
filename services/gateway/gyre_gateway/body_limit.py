"""Refuse request bodies too large to be a valid request (413) before they are read into memory.

Two limits: the document routes take up to a whole document (GYRE_MAX_DOCUMENT_CHARS), every
other route GYRE_MAX_REQUEST_BYTES. A declared ``Content-Length`` over the limit is refused at
once; a chunked body is counted as it arrives and refused at the first byte over.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gyre_gateway.errors import ApiError, HttpApiError, error_response

# JSON escaping can make text several times longer than its characters (``\u00e9`` is six bytes for
# one); base64 adds a third. Eight bytes per allowed character leaves room for both.
BYTES_PER_DOCUMENT_CHAR = 8
HEADROOM_BYTES = 1 << 20
DOCUMENT_ROUTES = "/v1/documents"


def max_body_bytes(max_document_chars: int) -> int:
    return BYTES_PER_DOCUMENT_CHAR * max_document_chars + HEADROOM_BYTES


def body_limit_for(path: str, *, document_bytes: int, request_bytes: int) -> tuple[int, str]:
    """The byte limit of a route and the setting that decides it."""
    if path == DOCUMENT_ROUTES or path.startswith(DOCUMENT_ROUTES + "/"):
        return document_bytes, "GYRE_MAX_DOCUMENT_CHARS"
    return request_bytes, "GYRE_MAX_REQUEST_BYTES"


def too_large(size: int | None, limit: int, setting: str) -> ApiError:
    what = f"request body of {size} bytes is" if size is not None else "request body is"
    return ApiError(
        413,
        f"{what} over the gateway's limit of {limit} bytes for this route (set by {setting}); send less per request",
        code="request_too_large",
    )


class BodySizeLimitMiddleware:
    """413 in the OpenAI error format for a body over its route's limit, declared or counted."""

    def __init__(self, app: ASGIApp, *, document_bytes: int, request_bytes: int) -> None:
        self.app = app
        self.document_bytes = document_bytes
        self.request_bytes = request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = body_limit_for(
            scope.get("path", ""), document_bytes=self.document_bytes, request_bytes=self.request_bytes
        )
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await error_response(too_large(int(declared), limit, setting))(scope, receive, send)
            return
        received = 0

        async def receive_counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the app's body read: FastAPI passes HTTP exceptions on to the handlers.
                    raise HttpApiError(too_large(None, limit, setting))
            return message

        await self.app(scope, receive_counted, send)
