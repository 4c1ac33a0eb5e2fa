"""Refuse a /v1 body in a format its route does not read (415): JSON routes take JSON, the upload multipart."""

from __future__ import annotations

from fastapi import Request

from gyre_gateway.errors import ApiError

API_PREFIX = "/v1/"
MULTIPART_ROUTES = frozenset({"/v1/documents/upload"})
# Golden sets are JSONL files: their route also reads them as sent (or as JSON {"items": [...]}).
JSONL_ROUTE_PREFIX = "/v1/evaluations/sets/"
JSONL_MEDIA_TYPES = frozenset(
    {"application/x-ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines", "text/plain"}
)
METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
FORM_MEDIA_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def unsupported_media_type(path: str, content_type: str) -> ApiError | None:
    """The 415 for a ``Content-Type`` the route cannot read; None if it can (or none was sent: JSON is assumed)."""
    media_type = content_type.partition(";")[0].strip().lower()
    if not media_type:
        return None
    if path in MULTIPART_ROUTES:
        if media_type in FORM_MEDIA_TYPES:  # a form without files gets the 400 that names `files`
            return None
        expected = "multipart/form-data (one `files` part per file)"
    elif is_json(media_type):
        return None
    elif path.startswith(JSONL_ROUTE_PREFIX):
        if media_type in JSONL_MEDIA_TYPES:
            return None
        expected = "application/x-ndjson (one JSON item per line) or application/json"
    else:
        expected = "application/json"
    return ApiError(
        415,
        f"Content-Type {media_type!r} is not supported on {path}: send {expected}",
        code="unsupported_media_type",
    )


async def require_readable_body(request: Request) -> None:
    """App-wide dependency, so it runs only for a route that exists (an unknown path stays a 404)."""
    if request.method in METHODS_WITH_BODY and request.url.path.startswith(API_PREFIX):
        error = unsupported_media_type(request.url.path, request.headers.get("content-type", ""))
        if error is not None:
            raise error
