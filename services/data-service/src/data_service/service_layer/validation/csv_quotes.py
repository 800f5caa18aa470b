"""Where a CSV's quoted fields open and close, read off the raw bytes, so that a quote left open
is named on the line where it opens.

pyarrow reads quotes as leniently as pandas and Python's csv module do: a closing quote followed
by more text just goes on as unquoted text. A quote left open on line 800 is therefore closed by
the next quote in the file, usually the opening quote of a field on a later line, and every line
between becomes part of one value: rows vanish and nothing is said. A well-formed quoted field
ends with a quote followed by the delimiter or the end of the line, so a quoted field that spans
lines and whose closing quote is followed by text is that accident. A field closed that way on
the line it opened on (`"a"b`) loses no row and is read as pyarrow reads it, as before.

Only the quotes are walked, with numpy: each run of consecutive quotes maps the state before it
(inside or outside a quoted field) to the state after it in one of three ways (toggle, identity,
back to outside), so the states of all runs of a block are a prefix scan.
"""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

_QUOTE = 0x22
_NEWLINE = 0x0A
_CR = 0x0D

Ints = npt.NDArray[np.int64]
# (the line a quoted field opened on, the line of the quote that closed it by accident or None)
Report = Callable[[int, int | None], None]


class QuoteScanner:
    """Fed the CSV's bytes in order (with the number of lines before each block); calls
    `report(open_line, close_line)` for each quoted field left open: `close_line` is the line of
    the quote that closed it by accident, None when it is still open at the end of the file."""

    def __init__(self, delimiter: str, report: Report) -> None:
        self._separators = np.zeros(256, dtype=bool)
        self._separators[[ord(delimiter), _NEWLINE, _CR]] = True
        self._report = report
        self._inside = False
        self._open_line = 0  # the line where the open quoted field began, while inside one
        self._before = _NEWLINE  # the byte before the next one fed (the file starts a line)
        # A run of quotes at the end of a block waits for the byte after it.
        self._carry = b""
        self._carry_line = 0

    def feed(self, block: bytes, lines_before: int) -> None:
        """`lines_before`: the newlines in the file before `block`."""
        if not self._carry and b'"' not in block:  # the common block: nothing changes
            if block:
                self._before = block[-1]
            return
        if self._carry:
            block = self._carry + block
            lines_before = self._carry_line - 1
            self._carry = b""
        self._scan(block, lines_before, final=False)

    def finish(self) -> None:
        """The end of the file: a quoted field still open is reported."""
        if self._carry:
            carry, self._carry = self._carry, b""
            self._scan(carry, self._carry_line - 1, final=True)
        if self._inside:
            self._report(self._open_line, None)
            self._inside = False

    def _scan(self, data: bytes, lines_before: int, *, final: bool) -> None:
        arr = np.frombuffer(data, dtype=np.uint8)
        quotes = np.flatnonzero(arr == _QUOTE)
        if quotes.size == 0:
            if data:
                self._before = data[-1]
            return
        cut = np.flatnonzero(np.diff(quotes) != 1) + 1
        if cut.size == quotes.size - 1:  # no doubled quotes: every run is one quote
            starts = ends = quotes
        else:
            starts = quotes[np.concatenate(([0], cut))]
            ends = quotes[np.concatenate((cut - 1, [quotes.size - 1]))]
        end = len(data)
        if not final and int(ends[-1]) == end - 1:
            # What follows the last run is in the next block: keep the run for it.
            end = int(starts[-1])
            self._carry = data[end:]
            self._carry_line = lines_before + data.count(b"\n", 0, end) + 1
            starts, ends = starts[:-1], ends[:-1]
        if starts.size:
            self._runs(arr, starts, ends, lines_before)
        if end:
            self._before = data[end - 1]

    def _runs(
        self, arr: npt.NDArray[np.uint8], starts: Ints, ends: Ints, lines_before: int
    ) -> None:
        before = arr[starts - 1]  # index -1: the last byte, put right below
        if starts[0] == 0:
            before[0] = self._before
        after = arr[np.minimum(ends + 1, arr.size - 1)]
        if ends[-1] == arr.size - 1:
            after[-1] = _NEWLINE  # the end of the file
        at_start = self._separators[before]
        odd = ((ends - starts) & 1) == 0
        toggle = at_start & odd  # opens a field (pairs after it escape) or closes one
        reset = ~at_start & odd  # closes a field, or is literal text in an unquoted one
        toggles = np.cumsum(toggle)
        last_reset = np.maximum.accumulate(np.where(reset, np.arange(starts.size), -1))
        # Inside after run k: an odd number of toggles since the last reset (or since the block
        # began, counting the state it began in).
        since = np.where(last_reset >= 0, toggles - toggles[last_reset], toggles + self._inside)
        inside_after = (since & 1).astype(bool)
        inside_before = np.empty_like(inside_after)
        inside_before[0] = self._inside
        inside_before[1:] = inside_after[:-1]
        # A closing quote (an odd run inside a field) must be followed by a separator.
        bad = np.flatnonzero(inside_before & odd & ~self._separators[after])
        ends_inside = bool(inside_after[-1])
        if bad.size or ends_inside:
            self._opened(arr, starts, ends, lines_before, bad, inside_before, inside_after)
        self._inside = ends_inside

    def _opened(
        self,
        arr: npt.NDArray[np.uint8],
        starts: Ints,
        ends: Ints,
        lines_before: int,
        bad: Ints,
        inside_before: npt.NDArray[np.bool_],
        inside_after: npt.NDArray[np.bool_],
    ) -> None:
        """Reports the fields closed by accident on a later line; keeps the line of the one
        still open at the end of the block."""
        index = np.arange(starts.size)
        last_open = np.maximum.accumulate(np.where(~inside_before & inside_after, index, -1))
        newlines: Ints | None = None

        def line_of(position: int) -> int:
            nonlocal newlines
            if newlines is None:
                newlines = np.flatnonzero(arr == _NEWLINE)
            return lines_before + int(np.searchsorted(newlines, position)) + 1

        for k in bad.tolist():
            opener = int(last_open[k])
            open_line = line_of(int(starts[opener])) if opener >= 0 else self._open_line
            close_line = line_of(int(ends[k]))
            if close_line > open_line:
                self._report(open_line, close_line)
        if inside_after[-1] and last_open[-1] >= 0:
            self._open_line = line_of(int(starts[int(last_open[-1])]))
