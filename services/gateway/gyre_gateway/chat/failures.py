"""The HTTP error for a generation that failed or fell silent: 4xx for what the requester can fix, else 5xx."""

from __future__ import annotations

from gyre_contracts import GenerationFailed
from gyre_gateway.chat.backpressure import BUSY_RETRY_AFTER_S
from gyre_gateway.errors import ApiError, retry_later

# A failure the requester caused and can fix: (status, code, param). The message is the generate
# service's own text, which already says what to change, so it is passed on without a prefix.
CLIENT_FAILURES: dict[str, tuple[int, str, str | None]] = {
    # The same code the gateway's own range checks use, so a client sees one code whichever side caught it.
    "invalid_request": (400, "invalid_value", None),
    # OpenAI's code and param for a conversation that does not fit; the gateway's own check answers the same.
    "context_length_exceeded": (400, "context_length_exceeded", "messages"),
    "unknown_prompt_label": (404, "prompt_not_found", "prompt_label"),
    "unknown_model": (404, "model_not_found", "model"),
}

# A failure for a passing reason: a 503 with (code, seconds to wait before sending the request again).
PASSING_FAILURES: dict[str, tuple[str, float]] = {
    # 503, not the contract's suggested 408: a 408 says the *client* was too slow to send its request
    # (RFC 9110), while this one arrived whole and waited in the generate backlog until nobody could
    # still want it. The server was overloaded, the request is fine and may be sent again as is.
    # Its wait is a full queue's: the backlog drains at a generation's pace.
    "expired": ("request_expired", BUSY_RETRY_AFTER_S),
    # The retrieval service restarting or reconnecting: as upstream.py's 503s.
    "retrieval_unavailable": ("retrieval_unavailable", 1),
}


def generation_failed(failed: GenerationFailed) -> ApiError:
    """The HTTP error for a GenerationFailed, by its ``code`` (docs/architecture.md).

    The requester's faults are 4xx with the failure's text as the message; the deployment's are 5xx,
    with Retry-After where waiting helps. An unknown code (a publisher older than the codes, or
    newer than this gateway) stays the 502 every failure was before.
    """
    if failed.code in CLIENT_FAILURES:
        status, code, param = CLIENT_FAILURES[failed.code]
        return ApiError(status, failed.error, code=code, param=param)
    if failed.code in PASSING_FAILURES:
        code, after_s = PASSING_FAILURES[failed.code]
        return retry_later(503, f"generation failed: {failed.error}", code=code, after_s=after_s)
    return ApiError(502, f"generation failed: {failed.error}", code="generation_failed")


def generation_timeout(timeout_s: float, *, first: bool = False) -> ApiError:
    if first:
        message = (
            f"no token from the generate service within {timeout_s:g}s (GYRE_FIRST_TOKEN_TIMEOUT_S); "
            "it is busy or down, retry later"
        )
    else:
        message = f"the generate service went silent for {timeout_s:g}s mid-answer (GYRE_REQUEST_TIMEOUT_S)"
    return ApiError(504, message, code="timeout")
