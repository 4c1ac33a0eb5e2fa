"""Embeddings: limits per request and per key, an EmbedRequest request/reply to the embed service, OpenAI's shape.

Three limits keep one caller from slowing everyone's searches (the embed service's scheduler also
gives tenants turns and bounds each tenant's queue):

- per request: at most ``GYRE_EMBEDDINGS_MAX_INPUTS`` inputs and ``GYRE_EMBEDDINGS_MAX_CHARS``
  characters in all (400 naming the limit);
- per key: ``GYRE_EMBEDDINGS_INPUTS_PER_MINUTE`` inputs (429 with Retry-After), besides the
  requests-per-minute limit every ``/v1`` route has;
- per tenant, in each embed replica: a full queue is answered "busy", which becomes 429 with the
  service's retry hint; the inputs it took from the key's allowance are given back.
"""

from __future__ import annotations

import base64
import struct

from gyre_contracts import EmbedRequest, EmbedResult
from gyre_gateway.auth import Caller, rate_limited
from gyre_gateway.embeddings.protocol import EmbeddingData, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from gyre_gateway.errors import ApiError, retry_later
from gyre_gateway.rate_limit import RateLimiter
from gyre_gateway.upstream import request_reply, upstream_failure
from gyre_runtime.config import Settings
from gyre_runtime.logging import get_logger
from gyre_runtime.service import Service

log = get_logger()


def input_texts(body: EmbeddingRequest) -> tuple[str, ...]:
    return (body.input,) if isinstance(body.input, str) else tuple(body.input)


def encode_base64_floats(vector: tuple[float, ...]) -> str:
    """What OpenAI's ``encoding_format=base64`` means: little-endian float32 bytes, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_list(body: EmbeddingRequest, result: EmbedResult, expected: int) -> EmbeddingList:
    if len(result.vectors) != expected:
        raise ApiError(
            502,
            f"embed service returned {len(result.vectors)} vectors for {expected} inputs",
            code="bad_upstream_reply",
        )
    if body.dimensions is not None and result.vectors and body.dimensions != len(result.vectors[0]):
        raise ApiError(
            400,
            f"dimensions={body.dimensions} is not available: the model gives {len(result.vectors[0])}",
            code="invalid_value",
            param="dimensions",
        )
    data = [
        EmbeddingData(
            index=i, embedding=encode_base64_floats(v) if body.encoding_format == "base64" else list(v)
        )
        for i, v in enumerate(result.vectors)
    ]
    tokens = sum(result.token_counts)
    return EmbeddingList(
        data=data,
        model=result.embedding_model or body.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )


def check_request_size(texts: tuple[str, ...], settings: Settings) -> None:
    """400 naming the limit when a request has more inputs or characters than one request may."""
    if len(texts) > settings.embeddings_max_inputs:
        raise ApiError(
            400,
            f"input: {len(texts)} inputs, at most {settings.embeddings_max_inputs} per request "
            "(GYRE_EMBEDDINGS_MAX_INPUTS); split them over several requests",
            code="too_many_inputs",
            param="input",
        )
    chars = sum(len(t) for t in texts)
    if chars > settings.embeddings_max_chars:
        raise ApiError(
            400,
            f"input: {chars} characters in all, at most {settings.embeddings_max_chars} per request "
            "(GYRE_EMBEDDINGS_MAX_CHARS); split them over several requests",
            code="input_too_long",
            param="input",
        )


def take_input_allowance(limiter: RateLimiter, caller: Caller, inputs: int, per_minute: int) -> None:
    """Take ``inputs`` from the key's inputs-per-minute allowance, or 429 with Retry-After (nothing taken)."""
    if not per_minute:
        return
    if inputs > per_minute:
        raise ApiError(
            400,
            f"input: {inputs} inputs is more than the {per_minute} inputs per minute this key may send "
            "(GYRE_EMBEDDINGS_INPUTS_PER_MINUTE); send fewer per request",
            code="too_many_inputs",
            param="input",
        )
    wait_s = limiter.acquire(caller.key_id, per_minute, inputs)
    if wait_s > 0:
        raise rate_limited(caller, per_minute, wait_s, unit="inputs", name="embedding rate limit")


def embed_queue_full(result: EmbedResult) -> ApiError:
    message = f"embed service busy: {result.error}"
    return retry_later(429, message, code="embed_queue_full", after_s=result.retry_after_s)


async def create_embeddings(
    service: Service,
    caller: Caller,
    body: EmbeddingRequest,
    input_limiter: RateLimiter,
    *,
    traceparent: str | None = None,
) -> EmbeddingList:
    texts = input_texts(body)
    settings = service.settings
    check_request_size(texts, settings)
    take_input_allowance(input_limiter, caller, len(texts), settings.embeddings_inputs_per_minute)
    try:
        result = await request_reply(
            service,
            EmbedRequest(tenant=caller.tenant, texts=texts),
            EmbedResult,
            unavailable="embed service unavailable: no replica answers embedding requests; start `gyre-embed`",
            traceparent=traceparent,
        )
    except ApiError:
        input_limiter.give_back(caller.key_id, len(texts))  # nothing was embedded
        raise
    if result.error and result.retry_after_s > 0:
        input_limiter.give_back(caller.key_id, len(texts))
        raise embed_queue_full(result)
    if result.error:
        raise upstream_failure(result.error, "embed")
    log.info("embeddings_done", inputs=len(texts), model=result.embedding_model)
    return embedding_list(body, result, len(texts))
