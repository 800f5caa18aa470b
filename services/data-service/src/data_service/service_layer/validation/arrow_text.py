"""Per-value facts about a pyarrow string column, read off its buffers with numpy: a value's
length and its newlines are differences of offsets, so nothing walks the values one by one
(pyarrow's utf8_length and count_substring kernels scan every byte of every value)."""

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Counts = npt.NDArray[np.int64]
_NEWLINE = 0x0A


def _buffers(col: pa.Array) -> tuple[Counts, npt.NDArray[np.uint8]]:
    """The value offsets (from 0) and the bytes of a `string` column without nulls."""
    _, offsets_buffer, data_buffer = col.buffers()
    offsets = np.frombuffer(
        offsets_buffer, dtype=np.int32, count=len(col) + 1, offset=col.offset * 4
    ).astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    offsets -= start
    if data_buffer is None or end == start:
        return offsets, np.empty(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8, count=end - start, offset=start)


def _per_value(positions: npt.NDArray[np.intp], offsets: Counts) -> Counts:
    """How many of the sorted byte `positions` fall in each value."""
    return np.searchsorted(positions, offsets[1:]) - np.searchsorted(positions, offsets[:-1])


def char_lengths(col: pa.Array) -> Counts:
    """Each value's length in characters (code points): its bytes, less UTF-8 continuation
    bytes, which only non-ASCII text has."""
    offsets, data = _buffers(col)
    lengths = np.diff(offsets)
    if data.size and int(data.max()) >= 0x80:
        lengths -= _per_value(np.flatnonzero((data & 0xC0) == 0x80), offsets)
    return lengths


def newlines_per_value(col: pa.Array) -> Counts | None:
    """Each value's newlines (quoted values may hold them); None when no value has one."""
    offsets, data = _buffers(col)
    hits = data == _NEWLINE
    if not hits.any():  # the common case: cheaper than collecting no positions
        return None
    return _per_value(np.flatnonzero(hits), offsets)
