"""Request and response bodies of the OpenAI-compatible embeddings endpoint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The bus's own limits (what an EmbedRequest may carry); the deployment's tighter ones are settings
# (GYRE_EMBEDDINGS_MAX_INPUTS, GYRE_EMBEDDINGS_MAX_CHARS), checked in serving.py.
from gyre_contracts.limits import EMBED_INPUT_MAX_CHARS as MAX_INPUT_CHARS
from gyre_contracts.limits import EMBED_MAX_INPUTS as MAX_INPUTS


class EmbeddingRequest(BaseModel):
    """OpenAI's request; ``input`` is a string or a list of strings (token arrays are not supported)."""

    model_config = ConfigDict(extra="ignore")

    input: str | list[str]
    model: str = Field(default="", description="Embedding model id from /v1/models; empty means the default.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _check_input(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and not value:
            raise ValueError("must not be empty")
        if len(items) > MAX_INPUTS:
            raise ValueError(f"at most {MAX_INPUTS} inputs per request")
        for item in items:
            if isinstance(item, int | list):
                raise ValueError("token arrays are not supported; send text")
            if isinstance(item, str) and not item.strip():
                raise ValueError("inputs must not be empty strings")
            if isinstance(item, str) and len(item) > MAX_INPUT_CHARS:
                raise ValueError(f"inputs must be at most {MAX_INPUT_CHARS} characters")
        return value


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of little-endian float32 when asked for.")


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
