"""HTTP routes of the chat web page: the page at ``/`` and ``/chat``, its script and stylesheet under ``/web/``.

The files ship inside the package (``gyre_gateway/web/static``), so the page works offline: no
CDN, no build step. The page itself needs no key to load; it calls ``/v1`` with the key the user
types, so it needs only the ``query`` and ``feedback`` scopes.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from gyre_gateway.errors import ApiError

router = APIRouter(tags=["web"], include_in_schema=False)

PAGE = "chat.html"
# Only these files are served (no path from the URL ever reaches the file system).
ASSETS: dict[str, str] = {
    "chat.js": "text/javascript; charset=utf-8",
    "chat.css": "text/css; charset=utf-8",
}

# Everything comes from this origin; the page never loads or sends anything elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Re-validated on every load, so an upgraded gateway never runs an old script against a new API.
    "Cache-Control": "no-cache",
}


@cache
def static_bytes(name: str) -> bytes:
    """A file of ``gyre_gateway/web/static``, read once per process."""
    return files("gyre_gateway.web").joinpath("static", name).read_bytes()


@router.get("/", response_class=HTMLResponse)
@router.get("/chat", response_class=HTMLResponse)
async def chat_page() -> HTMLResponse:
    """The chat page: ask a question, watch the answer stream, see its sources, rate it."""
    return HTMLResponse(static_bytes(PAGE), headers=PAGE_HEADERS)


@router.get("/web/{name}")
async def chat_asset(name: str) -> Response:
    """The page's script and stylesheet."""
    media_type = ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, f"no web asset {name!r}; the page is at /chat", code="not_found")
    return Response(static_bytes(name), media_type=media_type, headers=PAGE_HEADERS)
