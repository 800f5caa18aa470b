"""A CSV's header, and what its validator says about a header, a record or a quote that is wrong."""

import csv

from data_service.domain.report import Problem
from data_service.domain.shapes import (
    CsvShape,
    closest_csv_shape,
    describe_csv_shapes,
    match_csv_header,
)

_DELIMITERS = (",", "\t", ";", "|")


def parse_header(first_line: str) -> tuple[str, list[str], CsvShape | None]:
    """(delimiter, column names, shape): the delimiter that makes the header a known shape."""
    fallback: tuple[str, list[str]] | None = None
    for delimiter in _DELIMITERS:
        try:
            names = next(csv.reader([first_line], delimiter=delimiter))
        except (csv.Error, StopIteration):
            continue
        if fallback is None:
            fallback = (delimiter, names)
        shape = match_csv_header(names)
        if shape is not None:
            return delimiter, names, shape
    delimiter, names = fallback or (",", [first_line])
    return delimiter, names, None


def header_problem(columns: list[str]) -> Problem:
    names = [c.strip().lower() for c in columns]
    closest = closest_csv_shape(columns)
    missing = [c for c in closest.columns if c not in names]
    extra = [c for c in names if c not in closest.columns]
    if len(set(names)) != len(names):
        detail = "duplicate column names"
    else:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(repr(c) for c in extra)}")
        detail = "; ".join(parts) or "unknown columns"
    return Problem(
        "wrong_columns",
        f"The header does not match any accepted shape ({detail}). Accepted: "
        f"{describe_csv_shapes()}.",
        line=1,
    )


class InvalidRow:
    """A record pyarrow skipped (a wrong number of fields), as much of it as a message needs."""

    __slots__ = ("actual", "expected", "newlines", "number", "text")

    def __init__(self, number: int, text: str, expected: int, actual: int) -> None:
        self.number = number
        self.text = text[:120]
        self.newlines = text.count("\n")
        self.expected = expected
        self.actual = actual


def invalid_row_problem(row: InvalidRow, line: int | None, delimiter: str) -> Problem:
    if (row.newlines and row.text.lstrip().startswith('"')) or row.text.count('"') % 2:
        return Problem(
            "unclosed_quote",
            f"A quoted field is not closed (expected {row.expected} fields, got {row.actual}).",
            line=line,
        )
    if not row.text.strip():
        return Problem("empty_row", "The line is empty.", line=line)
    return Problem(
        "wrong_field_count",
        f"Expected {row.expected} fields, got {row.actual}: check the delimiter "
        f"({delimiter!r}) and quoting.",
        line=line,
    )


def unclosed_quote_problem(open_line: int, close_line: int | None) -> Problem:
    """A quoted field left open (csv_quotes): closed by accident on `close_line`, or never."""
    if close_line is None:
        where = "it is never closed, so the rest of the file is read as one value"
    else:
        where = (
            f"the quote that ends it, on line {close_line}, has text after it, so lines "
            f"{open_line}-{close_line} are read as one value"
        )
    return Problem(
        "unclosed_quote",
        f"A quoted field opens on this line and {where}. Close the quote, or double a quote "
        'that is part of the text ("").',
        line=open_line,
    )


def arrow_problem(message: str, line: int, block_size: int) -> Problem:
    """pyarrow gave up on the file at the record starting near `line`."""
    if "straddl" in message:
        return Problem(
            "record_too_long",
            f"A record starting near this line is longer than {block_size >> 20} MiB: "
            "probably a quote that is never closed.",
            line=line,
        )
    return Problem("malformed_csv", f"The CSV cannot be parsed: {message}", line=line)
