import base64
import re

import pytest

from servicekit.errors import ApiError
from servicekit.responses import Data, Page, decode_cursor, encode_cursor


def test_data_envelope() -> None:
    assert Data[dict[str, int]](data={"id": 1}).model_dump() == {"data": {"id": 1}}


def test_page_has_more_follows_the_cursor() -> None:
    assert Page[int](data=[], next_cursor=None, limit=50).model_dump()["has_more"] is False
    assert Page[int](data=[1, 2], next_cursor="abc", limit=2).model_dump() == {
        "data": [1, 2],
        "next_cursor": "abc",
        "has_more": True,
        "limit": 2,
    }


@pytest.mark.parametrize(
    "values",
    [
        ["2026-01-01T00:00:00+00:00", "6f1c2e0a-0000-4000-8000-000000000000"],
        [42],
        [1.5, "é ünïcode", -3],
        ["needs padding?"],
    ],
)
def test_cursor_round_trip(values: list[str | int | float]) -> None:
    cursor = encode_cursor(values)

    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert decode_cursor(cursor, len(values)) == values


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("cursor", "arity"),
    [
        ("", 1),
        ("!!!", 1),
        ("a", 1),
        ("é", 1),
        ("a b", 1),
        (_b64(b"not json"), 1),
        (_b64(b'{"a": 1}'), 1),
        (_b64(b'"text"'), 1),
        (_b64(b"[1, 2]"), 1),
        (_b64(b"[1]"), 2),
        (_b64(b"[null]"), 1),
        (_b64(b"[true]"), 1),
        (_b64(b"[[1]]"), 1),
        (_b64(b"[1]") * 200, 1),
    ],
)
def test_bad_cursor_is_a_422(cursor: str, arity: int) -> None:
    with pytest.raises(ApiError) as caught:
        decode_cursor(cursor, arity)

    assert (caught.value.status, caught.value.code) == (422, "invalid_cursor")
    assert caught.value.message == (
        "The cursor is not valid; use the next_cursor of a previous page."
    )
