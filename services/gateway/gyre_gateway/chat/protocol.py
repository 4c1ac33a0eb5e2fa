"""Request and response bodies of the OpenAI-compatible chat completions endpoint (plus Gyre's extras)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gyre_contracts.limits import (
    SAMPLING_TOP_K_MAX,
    STOP_SEQUENCE_MAX_CHARS,
    STOP_SEQUENCES_MAX,
    TOP_K_MAX,
)
from gyre_contracts.limits import SEED_MAX as SEED_MAX
from gyre_contracts.limits import SEED_MIN as SEED_MIN

MAX_STOP_SEQUENCES = STOP_SEQUENCES_MAX
MAX_TOP_K = SAMPLING_TOP_K_MAX
PROMPT_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PROMPT_LABEL_HEADER = "X-Gyre-Prompt-Label"


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
    """OpenAI's request; unknown OpenAI fields are ignored.

    Gyre's extras: top_k, retrieval, retrieval_top_k, prompt_label. Limits that depend on settings
    (``max_tokens`` up to GYRE_MAX_TOKENS_LIMIT, GYRE_MAX_INPUT_CHARS) are checked in serving.py.
    """

    model_config = ConfigDict(extra="ignore")

    model: str = Field(default="", description="Generation model id from /v1/models; empty means the default.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, description="0 is greedy (deterministic).")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, description="At most GYRE_MAX_TOKENS_LIMIT.")
    max_completion_tokens: int | None = Field(default=None, ge=1, description="OpenAI's newer name of max_tokens.")
    stop: str | list[str] | None = Field(default=None, description=f"Up to {MAX_STOP_SEQUENCES} stop sequences.")
    seed: int | None = Field(default=None, ge=SEED_MIN, le=SEED_MAX, strict=True)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, description="Choices to generate: only 1 is supported.")
    top_k: int | None = Field(
        default=None, ge=0, le=MAX_TOP_K, description="Sampling: keep the k likeliest tokens; 0 keeps them all."
    )
    retrieval: bool = Field(default=True, description="Ground the answer in this tenant's documents, with citations.")
    retrieval_top_k: int | None = Field(
        default=None, ge=1, le=TOP_K_MAX, description="Chunks retrieved for the answer."
    )
    prompt_label: str | None = Field(
        default=None,
        pattern=PROMPT_LABEL_PATTERN,
        description=f"Prompt template label (`production`, `candidate`, ...); also the `{PROMPT_LABEL_HEADER}` header.",
    )

    @field_validator("n")
    @classmethod
    def _check_n(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported: ask again for another answer")
        return value

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
        sequences = value if isinstance(value, list) else [value] if value else []
        if any(len(s) > STOP_SEQUENCE_MAX_CHARS for s in sequences):
            raise ValueError(f"a stop sequence may have at most {STOP_SEQUENCE_MAX_CHARS} characters")
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
