"""Request and response bodies of the search endpoint."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

FilterValue = str | int | float | bool | list[str | int | float | bool]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=10_000)
    top_k: int = Field(default=5, ge=1, le=50)
    filter: dict[str, FilterValue] = Field(
        default_factory=dict,
        description="Metadata key -> value every hit must have (exact match; a list matches any of its values).",
    )
    mode: Literal["dense", "sparse", "hybrid"] = Field(
        default="hybrid",
        description="dense: embedding similarity; sparse: BM25 keywords; hybrid: both, fused by reciprocal rank.",
    )


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
