"""HTTP route of the OpenAI-compatible chat completions endpoint."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from gyre_gateway.auth import Tenant
from gyre_gateway.chat.protocol import ChatCompletion, ChatCompletionRequest
from gyre_gateway.chat.serving import complete_chat, start_chat_stream, stream_chat_events
from gyre_gateway.upstream import service_of, traceparent_of

router = APIRouter(prefix="/v1", tags=["chat"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {}}, "description": "chat.completion, or SSE chunks"}},
)
async def create_chat_completion(body: ChatCompletionRequest, tenant: Tenant, request: Request) -> Any:
    """OpenAI-compatible chat completion, grounded in this tenant's documents; `stream: true` answers with SSE."""
    service = service_of(request)
    if not body.stream:
        return await complete_chat(service, tenant, body, traceparent=traceparent_of(request))
    follower = await start_chat_stream(service, tenant, body, traceparent=traceparent_of(request))
    model = body.model or service.settings.generation_model
    return StreamingResponse(
        stream_chat_events(follower, model),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
        # Also unsubscribes when the client left before the body was ever iterated.
        background=BackgroundTask(follower.close),
    )
