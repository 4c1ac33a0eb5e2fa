"""HTTP route of the OpenAI-compatible chat completions endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from gyre_gateway.auth import QueryTenant
from gyre_gateway.chat.protocol import PROMPT_LABEL_HEADER, PROMPT_LABEL_PATTERN, ChatCompletion, ChatCompletionRequest
from gyre_gateway.chat.serving import complete_chat, start_chat, stream_chat_events
from gyre_gateway.disconnect import unless_client_leaves
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["chat"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}, "description": "chat.completion, or SSE chunks"}},
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    tenant: QueryTenant,
    request: Request,
    prompt_label: Annotated[
        str | None,
        Header(
            alias=PROMPT_LABEL_HEADER,
            pattern=PROMPT_LABEL_PATTERN,
            description="Prompt template label, when the body has no `prompt_label`.",
        ),
    ] = None,
) -> Any:
    """OpenAI-compatible chat completion, grounded in this tenant's documents; `stream: true` answers with SSE.

    Busy generate replicas: 429 with Retry-After; none running: 503; no first token in time: 504.
    A client that leaves cancels its generation.
    """
    service = service_of(request)
    traceparent = traceparent_of(request)
    start = start_chat(service, tenant, body, traceparent=traceparent, prompt_label=prompt_label)
    follower = await unless_client_leaves(request, start)
    if not body.stream:
        try:
            return await unless_client_leaves(request, complete_chat(follower))
        finally:
            await follower.close()  # also when the client left before complete_chat began
    model = body.model or service.settings.generation_model
    return StreamingResponse(
        stream_chat_events(follower, model),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        # Also unsubscribes (and cancels) when the client left before the body was ever iterated.
        background=BackgroundTask(follower.close),
    )
