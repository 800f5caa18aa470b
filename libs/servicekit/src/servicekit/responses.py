"""Success bodies: a single `data` envelope, and keyset-paginated lists with opaque cursors.

Cursors are opaque to clients on purpose (base64 of the sort key of the last row), so the
ordering can change without breaking anyone who just echoes `next_cursor` back.
"""

import base64
import binascii
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel, Field, computed_field

from servicekit.errors import ApiError

CursorValue = str | int | float
T = TypeVar("T")


class Data(BaseModel, Generic[T]):
    """`{"data": ...}`: the envelope of every success body (typed, so OpenAPI shows it)."""

    data: T


class Page(BaseModel, Generic[T]):
    """A page of a list; `next_cursor` is None on the last page."""

    data: list[T]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page.")
    limit: int

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


# A cursor holds a handful of sort-key values; anything longer is not one of ours.
_MAX_CURSOR_LENGTH = 1024


def encode_cursor(values: Sequence[CursorValue]) -> str:
    """The sort-key values of the last row, as an opaque, URL-safe token."""
    raw = orjson.dumps(list(values))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _invalid_cursor() -> ApiError:
    return ApiError(
        422, "invalid_cursor", "The cursor is not valid; use the next_cursor of a previous page."
    )


def decode_cursor(cursor: str, arity: int) -> list[CursorValue]:
    """The values `encode_cursor` was given; a 422 `ApiError` for anything a client made up."""
    if not cursor or len(cursor) > _MAX_CURSOR_LENGTH:
        raise _invalid_cursor()
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)
        values = orjson.loads(raw)
    except (UnicodeEncodeError, binascii.Error, orjson.JSONDecodeError):
        raise _invalid_cursor() from None
    if not isinstance(values, list) or len(values) != arity:
        raise _invalid_cursor()
    # bool is an int subclass, and null/objects are never sort keys we wrote.
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
        raise _invalid_cursor()
    return values
