"""Request and response bodies of the feedback endpoint."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gyre_contracts.limits import FEEDBACK_TEXT_MAX_CHARS, REQUEST_ID_MAX_LENGTH, REQUEST_ID_PATTERN

MAX_TEXT_CHARS = FEEDBACK_TEXT_MAX_CHARS


class FeedbackCreate(BaseModel):
    """A rating of one answer: -1 or 1 (thumbs down/up), or 1..5 (stars); 0 is not a rating."""

    # Python's re: the contracts' patterns use a lookahead the default (Rust) engine lacks.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")

    request_id: str = Field(
        min_length=1,
        max_length=REQUEST_ID_MAX_LENGTH,
        pattern=REQUEST_ID_PATTERN,
        description="The `id` of the chat completion rated.",
    )
    rating: int = Field(ge=-1, le=5)
    comment: str = Field(default="", max_length=MAX_TEXT_CHARS)
    correction: str = Field(default="", max_length=MAX_TEXT_CHARS, description="What the answer should have said.")

    @field_validator("rating")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("0 is not a rating: use -1 or 1 (thumbs), or 1..5 (stars)")
        return value


class FeedbackReceipt(BaseModel):
    feedback_id: str
    request_id: str
    status: Literal["accepted"] = "accepted"
