"""The first rows of a stored file, from its first bytes only."""

import csv
import io
from typing import Any

import orjson


def preview_rows(
    head: bytes,
    fmt: str,
    columns: list[str],
    want: int,
    *,
    complete: bool,
    delimiter: str = ",",
) -> tuple[list[dict[str, Any]], bool]:
    """(rows, truncated). A record cut off by the end of `head` is left out."""
    text = head.decode("utf-8", "ignore").removeprefix("\ufeff")
    if not complete:
        text = text[: text.rfind("\n") + 1]
    rows: list[dict[str, Any]] = []
    if fmt == "jsonl":
        for line in text.splitlines():
            if line.strip():
                rows.append(orjson.loads(line))
            if len(rows) > want:
                break
    else:
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        next(reader, None)  # the header (columns are already normalised)
        for record in reader:
            rows.append(dict(zip(columns, record, strict=False)))
            if len(rows) > want:
                break
        if not complete and rows:
            rows.pop()  # the last record may continue past the bytes read
    return rows[:want], len(rows) > want
