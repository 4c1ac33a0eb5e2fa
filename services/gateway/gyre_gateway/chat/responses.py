"""A finished generation in OpenAI's shapes: one chat.completion, or the chat.completion.chunk SSE stream."""

from __future__ import annotations

from typing import Any

import msgspec

from gyre_contracts import Citation, GenerationCompleted
from gyre_gateway.chat.protocol import AssistantMessage, ChatCompletion, Choice, CitationOut, UsageInfo


def citations_out(citations: tuple[Citation, ...]) -> list[CitationOut]:
    """The answer's sources as the API shows them: CitationOut has the contract's fields, as UsageInfo has."""
    return [CitationOut(**msgspec.structs.asdict(c)) for c in citations]


def completion_response(completed: GenerationCompleted, created: int) -> ChatCompletion:
    return ChatCompletion(
        id=completed.request_id,
        created=created,
        model=completed.model_version,
        choices=[Choice(message=AssistantMessage(content=completed.answer), finish_reason=completed.finish_reason)],
        usage=UsageInfo(**msgspec.structs.asdict(completed.usage)),
        citations=citations_out(completed.citations),
    )


# --- SSE: OpenAI's chat.completion.chunk stream ---------------------------------------------


def sse_event(data: dict[str, Any] | str) -> bytes:
    """One server-sent event: ``data: <json>`` (or a literal such as ``[DONE]``) and a blank line."""
    payload = data if isinstance(data, str) else msgspec.json.encode(data).decode()
    return f"data: {payload}\n\n".encode()


def completion_chunk(
    request_id: str,
    created: int,
    model: str,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        **extra,
    }


def delta_of(text: str, *, first: bool) -> dict[str, Any]:
    """The first chunk names the role, as OpenAI's do."""
    return {"role": "assistant", "content": text} if first else {"content": text}


def final_chunk(completed: GenerationCompleted, created: int) -> dict[str, Any]:
    return completion_chunk(
        completed.request_id,
        created,
        completed.model_version,
        {},
        completed.finish_reason,
        usage=msgspec.structs.asdict(completed.usage),
        citations=[c.model_dump() for c in citations_out(completed.citations)],
    )
