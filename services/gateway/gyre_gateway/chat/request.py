"""From a chat completion request to the GenerationRequested event: messages, the deployment's limits, sampling."""

from __future__ import annotations

import msgspec

from gyre_contracts import ChatMessage, GenerationRequested, SamplingParams, new_id
from gyre_gateway.chat.protocol import ChatCompletionRequest, ChatMessageIn
from gyre_gateway.errors import ApiError
from gyre_runtime.config import Settings

REQUEST_ID_PREFIX = "chatcmpl-"


def message_text(message: ChatMessageIn) -> str:
    if isinstance(message.content, str):
        return message.content
    return "".join(part.text for part in message.content)


def contract_messages(messages: list[ChatMessageIn]) -> tuple[ChatMessage, ...]:
    out = []
    for message in messages:
        role = "system" if message.role == "developer" else message.role
        out.append(ChatMessage(role=role, content=message_text(message)))
    if not any(m.role == "user" and m.content.strip() for m in out):
        raise ApiError(
            400, "messages must contain a user message with some text", code="invalid_value", param="messages"
        )
    return tuple(out)


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def new_request_id() -> str:
    return f"{REQUEST_ID_PREFIX}{new_id()}"


def check_request_limits(body: ChatCompletionRequest, settings: Settings) -> None:
    """The limits that depend on settings: 400 naming the parameter."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(body, name)
        if value is not None and value > settings.max_tokens_limit:
            raise ApiError(
                400,
                f"{name}: {value} is over this deployment's limit of {settings.max_tokens_limit} tokens "
                "(GYRE_MAX_TOKENS_LIMIT, the model's context window)",
                code="invalid_value",
                param=name,
            )
    chars = sum(len(message_text(m)) for m in body.messages)
    if chars > settings.max_input_chars:
        raise ApiError(
            400,
            f"messages: {chars} characters in all, the limit is {settings.max_input_chars} (GYRE_MAX_INPUT_CHARS); "
            "shorten the conversation",
            code="context_length_exceeded",
            param="messages",
        )


def generation_request(
    tenant: str, body: ChatCompletionRequest, request_id: str, settings: Settings, *, prompt_label: str | None = None
) -> GenerationRequested:
    """The event for a validated request; unset sampling fields keep the contract's defaults.

    ``prompt_label`` is the ``X-Gyre-Prompt-Label`` header: the body's field wins over it.
    """
    check_request_limits(body, settings)
    defaults = SamplingParams()
    params = SamplingParams(
        max_tokens=body.max_tokens or body.max_completion_tokens or settings.max_new_tokens,
        temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        top_k=defaults.top_k if body.top_k is None else body.top_k,
        seed=body.seed,
        stop=stop_sequences(body.stop),
    )
    event = GenerationRequested(
        tenant=tenant,
        request_id=request_id,
        messages=contract_messages(body.messages),
        params=params,
        retrieval=body.retrieval,
        top_k=body.retrieval_top_k or settings.retrieval_top_k,
        model=body.model,
        stream=body.stream,
    )
    label = body.prompt_label or prompt_label
    return msgspec.structs.replace(event, prompt_label=label) if label else event
