"""Embeddings: an EmbedRequest request/reply to the embed service, answered in OpenAI's shape."""

from __future__ import annotations

import base64
import struct

from gyre_contracts import EmbedRequest, EmbedResult
from gyre_gateway.embeddings.protocol import EmbeddingData, EmbeddingList, EmbeddingRequest, EmbeddingUsage
from gyre_gateway.errors import ApiError
from gyre_gateway.upstream import request_reply, upstream_failure
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


async def create_embeddings(
    service: Service, tenant: str, body: EmbeddingRequest, *, traceparent: str | None = None
) -> EmbeddingList:
    texts = input_texts(body)
    result = await request_reply(
        service,
        EmbedRequest(tenant=tenant, texts=texts),
        EmbedResult,
        unavailable="embed service unavailable: no replica answers embedding requests; start `gyre-embed`",
        traceparent=traceparent,
    )
    if result.error:
        raise upstream_failure(result.error, "embed")
    log.info("embeddings_done", inputs=len(texts), model=result.embedding_model)
    return embedding_list(body, result, len(texts))
