"""Request and response bodies of the search endpoint."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from gyre_contracts.limits import (
    INT64_MAX,
    INT64_MIN,
    METADATA_KEY_MAX_CHARS,
    METADATA_MAX_KEYS,
    METADATA_STRING_MAX_CHARS,
    TOP_K_MAX,
    metadata_problem,
)
from gyre_runtime.vectorstore.base import InvalidSearch, metadata_key_path

# What the vector stores can match (gyre_runtime.vectorstore.scope.metadata_conditions): a string or an
# integer, or a non-empty list of strings or of integers (any of). No floats, no booleans: Qdrant Edge
# turns a boolean match into 1 or 0. Strings within the metadata limits: a longer one matches nothing.
FilterString = Annotated[str, Field(max_length=METADATA_STRING_MAX_CHARS)]
FilterInteger = Annotated[StrictInt, Field(ge=INT64_MIN, le=INT64_MAX)]
FilterValue = (
    FilterString
    | FilterInteger
    | Annotated[list[FilterString], Field(min_length=1, max_length=METADATA_MAX_KEYS)]
    | Annotated[list[FilterInteger], Field(min_length=1, max_length=METADATA_MAX_KEYS)]
)


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=5, ge=1, le=TOP_K_MAX)
    filter: dict[Annotated[str, Field(min_length=1, max_length=METADATA_KEY_MAX_CHARS)], FilterValue] = Field(
        default_factory=dict,
        max_length=METADATA_MAX_KEYS,
        description="Metadata key -> value every hit must have (exact match; a list matches any of its values).",
    )
    mode: Literal["dense", "sparse", "hybrid"] = Field(
        default="hybrid",
        description="dense: embedding similarity; sparse: BM25 keywords; hybrid: both, fused by reciprocal rank.",
    )

    @field_validator("filter")
    @classmethod
    def _check_filter_size(cls, value: dict[str, FilterValue]) -> dict[str, FilterValue]:
        problem = metadata_problem(value)  # the retrieve request carries it under the metadata limits
        if problem is not None:
            raise ValueError(problem)
        for key in value:
            try:
                metadata_key_path(key)  # the vector stores' rule: a key they cannot address is a 400 here
            except InvalidSearch as exc:
                raise ValueError(str(exc)) from None
        return value


class SearchHit(BaseModel):
    document_id: str
    chunk_id: str
    score: float
    text: str
    title: str
    metadata: dict[str, Any]
    heading_path: list[str] = Field(default_factory=list)
    page: int | None = None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    retrieval_ms: float
