"""Checks a document must pass before it is chunked; each failure is a named Rejection."""

from __future__ import annotations

from gyre_contracts import Rejection


def check_document(text: str, max_chars: int) -> list[Rejection]:
    reasons: list[Rejection] = []
    if not text.strip():
        reasons.append(Rejection(code="empty", message="the document has no text after normalisation"))
    if len(text) > max_chars:
        reasons.append(
            Rejection(
                code="too_large",
                message=f"the document has {len(text)} characters, more than the limit of {max_chars} "
                "(GYRE_MAX_DOCUMENT_CHARS)",
            )
        )
    return reasons
