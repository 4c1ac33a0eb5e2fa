"""Every gateway error as an OpenAI-style JSON body: ``{"error": {message, type, param, code}}``."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import nats.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gyre_runtime.logging import get_logger

log = get_logger()

# OpenAI's error `type` for a status; the specific reason goes in `code`.
ERROR_TYPES: dict[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
}


# Network addresses in text from behind the gateway (a backend's base URL, a host and port, an IP):
# a client of a 5xx learns nothing it can act on from them, an attacker learns the inside of the network.
INTERNAL_ADDRESS = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>()]*[^\s'\"<>().,:;!?]"  # a URL (not the punctuation after it)
    r"|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?"  # a bracketed IPv6 address
    r"|\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"  # an IPv4 address
    r"|\b(?=[A-Za-z0-9.-]*[A-Za-z])[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*:\d{2,5}\b"  # host:port
)
ADDRESS_PLACEHOLDER = "<internal address>"


def without_internal_addresses(text: str) -> str:
    """``text`` with every URL, IP address and host:port replaced by a placeholder."""
    return INTERNAL_ADDRESS.sub(ADDRESS_PLACEHOLDER, text)


def error_type_for(status_code: int) -> str:
    if status_code in ERROR_TYPES:
        return ERROR_TYPES[status_code]
    return "server_error" if status_code >= 500 else "invalid_request_error"


class ApiError(Exception):
    """An error a client can act on: HTTP status plus what was wrong and how to fix it."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        error_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code
        self.param = param
        self.error_type = error_type or error_type_for(status_code)
        self.headers = headers

    def body(self) -> dict[str, Any]:
        # A 5xx often carries text from a service or backend behind the gateway: its addresses stay inside.
        message = without_internal_addresses(self.message) if self.status_code >= 500 else self.message
        return error_body(message, self.error_type, param=self.param, code=self.code)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` is whole seconds: round up, so a client that waits that long gets through."""
    return str(max(1, math.ceil(wait_s)))


def retry_later(status_code: int, message: str, *, code: str, after_s: float) -> ApiError:
    """A refusal for a passing reason (a 429 or 503): the same request may be sent again after ``after_s``."""
    return ApiError(status_code, message, code=code, headers={"Retry-After": retry_after_header(after_s)})


def bus_hiccup(what_failed: str, exc: BaseException, *, code: str) -> ApiError:
    """The 503 for a bus call that failed for a passing reason (a node lost, JetStream electing a leader).

    Not the caller's fault and not lasting: the same request may simply be sent again a second later.
    """
    return retry_later(503, f"{what_failed} ({type(exc).__name__}); retry shortly", code=code, after_s=1)


class HttpApiError(StarletteHTTPException):
    """An ApiError raised where FastAPI lets only HTTP exceptions through unchanged (while it reads a body)."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.status_code, error.message, error.headers)
        self.error = error


def error_body(message: str, error_type: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers)


# What pydantic puts in a location for the member of a union it tried (``str``, ``list[str]``): not part of
# the JSON path a client sent.
UNION_MEMBER_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "none"})


def is_union_member_tag(part: str) -> bool:
    return part in UNION_MEMBER_TAGS or "[" in part or part.startswith(("function-", "constrained-"))


def field_path(loc: Sequence[int | str]) -> str:
    """``("body", "messages", 0, "role")`` -> ``"messages.0.role"`` (the JSON path a client sent)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(p for p in parts if not is_union_member_tag(p))


def validation_error(errors: Sequence[Any]) -> ApiError:
    """One 400 naming the first offending field (and how many others there are)."""
    if not errors:
        return ApiError(400, "invalid request", code="invalid_request")
    first = errors[0]
    param = field_path(first.get("loc", ())) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        ctx = first.get("ctx") or {}
        message = f"request body is not valid JSON: {ctx.get('error', first.get('msg', ''))}"
        return ApiError(400, message, code="invalid_json")
    # pydantic's "Value error, ..." prefix says nothing to an API user.
    reasons = [str(e.get("msg", "invalid value")).removeprefix("Value error, ") for e in errors]
    # A value that fits no member of a union fails once per member: one problem, several ways to fix it.
    same_field = [e for e in errors if (field_path(e.get("loc", ())) or None) == param]
    if len(same_field) > 1 and len(same_field) == len(errors):
        reason = " or ".join(dict.fromkeys(reasons))
        errors = errors[:1]
    else:
        reason = reasons[0]
    if kind == "missing":
        message = f"{param}: field required" if param else "request body is required"
    elif param:
        message = f"{param}: {reason}"
    else:
        message = reason
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ApiError(400, message, code="invalid_value", param=param)


def too_deeply_nested(param: str | None = None) -> ApiError:
    """The 400 for JSON nested deeper than a decoder can follow (thousands of levels: no API needs that)."""
    where = f"{param} is" if param else "the request body is"
    return ApiError(
        400, f"{where} JSON nested too deeply to read; send flatter JSON", code="invalid_json", param=param
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, including FastAPI's own, through the OpenAI error format."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return error_response(validation_error(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if isinstance(exc, HttpApiError):
            return error_response(exc.error)
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        code = None
        if isinstance(exc.__cause__, RecursionError):
            # FastAPI's own JSON body parsing ran out of stack: say why, as for any JSON the gateway reads.
            return error_response(too_deeply_nested())
        if exc.status_code == 404 and detail == "Not Found":
            detail, code = f"no route {request.method} {request.url.path}; see /docs for the API", "not_found"
        elif exc.status_code == 405:
            detail, code = f"method {request.method} is not allowed on {request.url.path}", "method_not_allowed"
        return error_response(ApiError(exc.status_code, detail, code=code, headers=getattr(exc, "headers", None)))

    async def on_too_deep(request: Request, exc: Exception) -> JSONResponse:
        # Every JSON decoder (json, msgspec, pydantic) recurses per level of nesting: none is an internal error.
        return error_response(too_deeply_nested())

    async def on_bus_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A KV read or write the bus could not answer (a node lost, JetStream electing a leader):
        # passing, not the gateway's fault, and the client can simply retry.
        log.warning("bus_unavailable", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return error_response(bus_hiccup("the event bus did not answer", exc, code="bus_unavailable"))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return error_response(ApiError(500, "internal error in the gateway; see its logs", code="internal_error"))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RecursionError, on_too_deep)
    app.add_exception_handler(nats.errors.Error, on_bus_unavailable)
    app.add_exception_handler(Exception, on_unexpected)
