"""The HTTP error for a generation that failed or fell silent: 4xx for what the requester can fix, else 5xx."""

from __future__ import annotations

from gyre_contracts import GenerationFailed
from gyre_gateway.errors import ApiError

# Seconds a client should wait before sending a request again that failed for a passing reason.
RETRIEVAL_RETRY_AFTER_S = 1  # the retrieval service restarting or reconnecting: as upstream.py's 503s
EXPIRED_RETRY_AFTER_S = 2  # a generate backlog: as backpressure.py's 429, it drains at a generation's pace

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


def generation_failed(failed: GenerationFailed) -> ApiError:
    """The HTTP error for a GenerationFailed, by its ``code`` (docs/architecture.md).

    The requester's faults are 4xx with the failure's text as the message; the deployment's are 5xx,
    with Retry-After where waiting helps. An unknown code (a publisher older than the codes, or
    newer than this gateway) stays the 502 every failure was before.
    """
    if failed.code in CLIENT_FAILURES:
        status, code, param = CLIENT_FAILURES[failed.code]
        return ApiError(status, failed.error, code=code, param=param)
    if failed.code == "expired":
        # 503, not the contract's suggested 408: a 408 says the *client* was too slow to send its request
        # (RFC 9110), while this one arrived whole and waited in the generate backlog until nobody could
        # still want it. The server was overloaded, the request is fine and may be sent again as is.
        return ApiError(
            503,
            f"generation failed: {failed.error}",
            code="request_expired",
            headers={"Retry-After": str(EXPIRED_RETRY_AFTER_S)},
        )
    if failed.code == "retrieval_unavailable":
        return ApiError(
            503,
            f"generation failed: {failed.error}",
            code="retrieval_unavailable",
            headers={"Retry-After": str(RETRIEVAL_RETRY_AFTER_S)},
        )
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
