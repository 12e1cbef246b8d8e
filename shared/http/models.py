"""Base classes of every request and reply model: unknown fields refused, strings trimmed."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RequestModel(BaseModel):
    """A request body's `data` or a query string: unknown fields are a VALIDATION_ERROR."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class ReplyModel(BaseModel):
    """A reply's `data`."""

    model_config = ConfigDict(frozen=True)


class PageQuery(RequestModel):
    """`?limit=&cursor=` of every list (CONTRACT.md: default 50, max 500)."""

    limit: int = Field(default=50, ge=1, le=500, description="Items per page (1-500).")
    cursor: str | None = Field(
        default=None, max_length=512, description="`meta.next_cursor` of the previous page."
    )
