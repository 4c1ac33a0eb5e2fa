"""Request and response bodies of the OpenAI-compatible chat completions endpoint (plus Gyre's extras)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_STOP_SEQUENCES = 4
MAX_TOKENS_LIMIT = 8192


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts are supported."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # "developer" is OpenAI's newer name for "system".
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = True


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; unknown OpenAI fields are ignored. Gyre's extras: top_k, retrieval, retrieval_top_k."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(default="", description="Generation model id from /v1/models; empty means the default.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1, description="Only 1 is supported.")
    top_k: int | None = Field(default=None, ge=1, le=1000, description="Sampling: keep the k likeliest tokens.")
    retrieval: bool = Field(default=True, description="Ground the answer in this tenant's documents, with citations.")
    retrieval_top_k: int | None = Field(default=None, ge=1, le=50, description="Chunks retrieved for the answer.")

    @field_validator("stop")
    @classmethod
    def _check_stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list):
            if len(value) > MAX_STOP_SEQUENCES:
                raise ValueError(f"at most {MAX_STOP_SEQUENCES} stop sequences")
            if any(not s for s in value):
                raise ValueError("stop sequences must not be empty")
        elif value == "":
            raise ValueError("stop sequence must not be empty")
        return value


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str
    logprobs: None = None


class UsageInfo(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CitationOut(BaseModel):
    """A source of the answer: `[number]` in the answer's text refers to it."""

    number: int
    document_id: str
    chunk_id: str
    title: str
    score: float
    excerpt: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: UsageInfo
    citations: list[CitationOut]
