"""Success bodies: a single `data` envelope, and keyset-paginated lists with cursors.

A list cursor is the sort key of the last row (creation time in microseconds since the epoch, and
the row's id), in a format the OpenAPI document states exactly (`CursorQuery`): every string that
matches its pattern is a position in the list, so a client (or a fuzzer) can never send a
schema-valid cursor that is then refused. Clients just echo `next_cursor` back.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field, computed_field

T = TypeVar("T")

KEYSET_CURSOR = r"^$|^[0-9]{1,16}_[0-9a-f]{32}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CursorQuery = Annotated[
    str | None,
    Query(
        pattern=KEYSET_CURSOR,
        description="The `next_cursor` of the previous page; absent or empty for the first.",
    ),
]

# The page size of the platform's own list routes (the OpenAI-shaped ones keep OpenAI's 1-100).
PageLimit = Annotated[int, Query(ge=1, le=200, description="Page size.")]


def keyset_cursor(created_at: datetime, row_id: UUID) -> str:
    """The cursor of the page after the row (created_at, row_id)."""
    micros = (created_at - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{row_id.hex}"


def keyset_after(cursor: str | None) -> tuple[datetime, UUID] | None:
    """The (created_at, id) a `CursorQuery` value points after; None for the first page."""
    if not cursor:
        return None
    micros, _, hex_id = cursor.partition("_")
    return _EPOCH + timedelta(microseconds=int(micros)), UUID(hex=hex_id)


class Data(BaseModel, Generic[T]):
    """`{"data": ...}`: the envelope of every success body (typed, so OpenAPI shows it)."""

    data: T


class Page(BaseModel, Generic[T]):
    """A page of a list; `next_cursor` is None on the last page."""

    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
    limit: int

    @classmethod
    def after(cls, data: list[T], last: tuple[datetime, UUID] | None, limit: int) -> "Page[T]":
        """A keyset page: `last` is the sort key (created_at, id) of its last row when another
        page follows, None on the last page."""
        return cls(data=data, next_cursor=keyset_cursor(*last) if last else None, limit=limit)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def has_more(self) -> bool:
        """True while `next_cursor` leads to another page."""
        return self.next_cursor is not None


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable, stable: e.g. `job_not_found`.")
    message: str = Field(description="A sentence for humans.")
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries documenting the error envelope for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}
