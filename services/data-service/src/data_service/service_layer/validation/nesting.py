"""How deeply a JSON line nests its arrays and objects, read off its bytes before any parser sees it.

A JSON parser recurses once per level: a line of 100,000 `[` exhausts the stack of msgspec (and
of the worker's parsers later) instead of being a line-numbered problem. The record shapes nest
three levels at most (a chat record's object, its `messages` list, a message), so a line is
refused beyond `Limits.max_nesting` (64), whatever other keys it carries.

Brackets inside strings do not count: a quote opens or closes a string unless an odd run of
backslashes precedes it. For a line that is not valid JSON the count may be off after the first
error, but never below the depth of the valid part a parser would read.
"""

import numpy as np
import numpy.typing as npt

Positions = npt.NDArray[np.intp]

_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPENERS = (0x5B, 0x7B)  # [ {
_CLOSERS = (0x5D, 0x7D)  # ] }


def may_nest_deeper(line: bytes, limit: int) -> bool:
    """False when the line cannot nest deeper than `limit`: no more openers than that (two
    C-speed counts; the exact `nesting_depth` is for the rare line that has more)."""
    return line.count(b"[") + line.count(b"{") > limit


def nesting_depth(line: bytes) -> int:
    """The deepest level of arrays and objects in the line (0 for a bare scalar)."""
    data = np.frombuffer(line, dtype=np.uint8)
    if not data.size:
        return 0
    step = np.isin(data, _OPENERS).astype(np.int32) - np.isin(data, _CLOSERS).astype(np.int32)
    quotes = np.flatnonzero(data == _QUOTE)
    if quotes.size:
        quotes = _unescaped(data, quotes)
        toggles = np.zeros(data.size, dtype=np.int8)
        toggles[quotes] = 1
        inside = (np.cumsum(toggles, dtype=np.int64) & 1).astype(bool)
        step[inside] = 0
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


def _unescaped(data: npt.NDArray[np.uint8], quotes: Positions) -> Positions:
    """The quotes not escaped: those after an even run of backslashes (none included)."""
    backslash = data == _BACKSLASH
    if not backslash.any():
        return quotes
    positions = np.arange(data.size)
    # For every position, the last one at or before it that is not a backslash.
    last_other = np.maximum.accumulate(np.where(backslash, -1, positions))
    before = quotes - 1
    run = np.where(before >= 0, before - last_other[np.maximum(before, 0)], 0)
    unescaped: Positions = quotes[(run & 1) == 0]
    return unescaped
