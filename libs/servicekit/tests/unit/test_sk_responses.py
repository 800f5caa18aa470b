import re
import uuid
from datetime import UTC, datetime

import pytest

from servicekit.responses import KEYSET_CURSOR, Data, Page, keyset_after, keyset_cursor


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
    "created_at",
    [
        datetime(2026, 12, 4, 19, 0, 0, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2286, 11, 20, tzinfo=UTC),
    ],
)
def test_keyset_cursor_round_trip_and_matches_its_pattern(created_at: datetime) -> None:
    row_id = uuid.uuid4()
    cursor = keyset_cursor(created_at, row_id)

    assert re.fullmatch(KEYSET_CURSOR, cursor)
    assert keyset_after(cursor) == (created_at, row_id)


def test_every_cursor_the_pattern_admits_is_a_position() -> None:
    for cursor in ("", "0_" + "0" * 32, "9" * 16 + "_" + "f" * 32):
        assert re.fullmatch(KEYSET_CURSOR, cursor)
        keyset_after(cursor)  # never raises
    assert keyset_after(None) is None
    assert keyset_after("") is None


@pytest.mark.parametrize(
    "cursor", ["x", "1_abc", "-1_" + "0" * 32, "1_" + "G" * 32, " 1_" + "0" * 32]
)
def test_anything_else_is_refused_by_the_pattern(cursor: str) -> None:
    assert not re.fullmatch(KEYSET_CURSOR, cursor)


def test_a_keyset_page_carries_the_cursor_of_its_last_row_until_the_last_page() -> None:
    created = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)
    row_id = uuid.uuid4()
    page = Page.after(["a", "b"], (created, row_id), limit=2)
    assert page.has_more
    assert page.next_cursor is not None
    assert keyset_after(page.next_cursor) == (created, row_id)
    last = Page.after(["c"], None, limit=2)
    assert (last.next_cursor, last.has_more, last.data, last.limit) == (None, False, ["c"], 2)
