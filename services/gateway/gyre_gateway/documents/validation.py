"""What the gateway refuses in a document before anything is sent: its media type, its size, the bus's limit."""

from __future__ import annotations

import base64
import binascii
import re

from gyre_contracts import DocumentSubmitted, encode_body
from gyre_contracts.media_types import UNKNOWN_CONTENT_TYPE, guess_content_type
from gyre_gateway.body_limit import BYTES_PER_DOCUMENT_CHAR
from gyre_gateway.documents.protocol import DocumentCreate
from gyre_gateway.errors import ApiError

# A media type as RFC 6838 names it (``type/subtype``), parameters after a ``;``.
MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")

# Room for the CloudEvents headers, which count towards the bus's max payload with the body.
HEADERS_ALLOWANCE_BYTES = 2048


def max_document_bytes(max_document_chars: int) -> int:
    """The most bytes a document's ``content`` may have: the most whose base64 fits a request.

    A request may be ``BYTES_PER_DOCUMENT_CHAR`` bytes per allowed character (body_limit.py);
    base64 turns 3 bytes into 4, so 3/4 of that (6 x GYRE_MAX_DOCUMENT_CHARS, 12 MB by default).
    """
    return BYTES_PER_DOCUMENT_CHAR * max_document_chars * 3 // 4


def normalise_content_type(content_type: str) -> str | None:
    """``Text/Markdown ; charset=UTF-8`` -> ``text/markdown; charset=UTF-8``; None if it is no media type.

    Parameters are kept (a charset helps ingest decode non-UTF-8 text); only the type is lowered.
    """
    media_type, _, parameters = content_type.partition(";")
    media_type = media_type.strip().lower()
    if not MEDIA_TYPE.match(media_type):
        return None
    kept = [p.strip() for p in parameters.split(";") if p.strip()]
    return "; ".join([media_type, *kept])


def upload_content_type(declared: str | None, filename: str) -> str:
    """A part's own content type, unless it says nothing (absent or octet-stream): then the file name's."""
    normalised = normalise_content_type(declared) if declared else None
    if normalised is None or normalised.startswith(UNKNOWN_CONTENT_TYPE):
        return guess_content_type(filename)
    return normalised


def too_large(size: int, limit: int, unit: str, param: str, name: str = "document") -> ApiError:
    return ApiError(
        413,
        f"{name} too large: {size} {unit}, the limit is {limit} (set by GYRE_MAX_DOCUMENT_CHARS); "
        "split it into several documents",
        code="document_too_large",
        param=param,
    )


def check_submission(body: DocumentCreate, max_chars: int) -> str:
    """Raise the 4xx a client can fix; return the normalised content type.

    Any media type is accepted: the ingest service decides what it can read and rejects the rest
    with a reason. Limits: ``text`` up to GYRE_MAX_DOCUMENT_CHARS characters, ``content`` up to
    ``max_document_bytes`` decoded bytes.
    """
    if (body.text is None) == (body.content is None):
        raise ApiError(
            400,
            "send exactly one of `text` (the document as a string) or `content` (its bytes, base64)",
            code="invalid_value",
            param="text",
        )
    content_type = normalise_content_type(body.content_type)
    if content_type is None:
        raise ApiError(
            400,
            f"content_type {body.content_type!r} is not a media type; send one such as text/markdown, "
            f"application/pdf, or {UNKNOWN_CONTENT_TYPE} to let ingest detect it",
            code="invalid_value",
            param="content_type",
        )
    if body.text is not None:
        if not body.text.strip():
            raise ApiError(400, "text is empty", code="invalid_value", param="text")
        if len(body.text) > max_chars:
            raise too_large(len(body.text), max_chars, "characters", "text")
        return content_type
    assert body.content is not None
    try:
        size = len(base64.b64decode(body.content, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"content is not valid base64: {exc}", code="invalid_base64", param="content") from exc
    if size == 0:
        raise ApiError(400, "content is empty", code="invalid_value", param="content")
    limit = max_document_bytes(max_chars)
    if size > limit:
        raise too_large(size, limit, "bytes", "content")
    return content_type


def check_fits_bus(submission: DocumentSubmitted, max_payload: int) -> None:
    """413 for a document whose event the bus would refuse (nats-server ``max_payload``, 1 MiB by default)."""
    size = len(encode_body(submission)) + HEADERS_ALLOWANCE_BYTES
    if size > max_payload:
        raise ApiError(
            413,
            f"document {submission.document_id!r} too large for the event bus: its event would be about {size} "
            f"bytes, the bus takes at most {max_payload} per message (nats-server `max_payload`); split the "
            "document, or raise max_payload in the NATS server's configuration",
            code="document_too_large",
            param="content" if submission.content is not None else "text",
        )
