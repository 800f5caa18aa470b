"""The block path of JSON Lines validation: a whole block of instruction records checked at once,
and the values' lengths read off the block's bytes with array operations.

A block of plain text (no escape, no control character: the common case) is checked on its bytes
alone (`_plain_block`): without escapes the quotes are the strings, and the separators between
them, compared with the canonical ones, prove the syntax. Any other block is decoded with one
msgspec `decode_lines`, which checks the syntax, the types and the keys, but reads a stream of
JSON values, whatever the lines; one object per line is then checked on the bytes: every line
starts with `{` and ends with `}` (so none is blank and no object spans two lines: the shape has
no nested objects) and there are as many objects as lines (so none holds two). What the stats
need (each value's length in characters) comes from the quotes' positions when the block allows
it, from the decoded strings otherwise. Anything the block path cannot vouch for returns None:
the caller goes line by line, which names the lines.
"""

from operator import attrgetter
from typing import NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

Lengths = npt.NDArray[np.int64]

_NEWLINE, _CR, _SPACE, _QUOTE, _BACKSLASH = 0x0A, 0x0D, 0x20, 0x22, 0x5C
_OPEN, _CLOSE, _COLON, _COMMA = 0x7B, 0x7D, 0x3A, 0x2C


def _spelling(name: str) -> tuple[int, tuple[tuple[int, int], ...]]:
    """A key's length and its quoted spelling (`"name":`, cut or padded to whole 8-byte words
    that overlap at the end) as (offset, little-endian word) pairs."""
    quoted = f'"{name}":'.encode()
    offsets = sorted({*range(0, len(quoted) - 8, 8), len(quoted) - 8})
    words = tuple((o, int(np.frombuffer(quoted[o : o + 8], dtype="<u8")[0])) for o in offsets)
    return len(name), words


_KEYS = {name: _spelling(name) for name in ("instruction", "output", "input")}
_KEY_SIZES = {name: size for name, (size, _) in _KEYS.items()}


class _Instruction(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """Exactly the well-formed instruction shape (gc=False: a block decodes thousands)."""

    instruction: str
    output: str
    input: str | None = None


_DECODER = msgspec.json.Decoder(_Instruction)


_INSTRUCTION = attrgetter("instruction")
_OUTPUT = attrgetter("output")
_INPUT = attrgetter("input")


class Block(NamedTuple):
    rows: int
    instruction: Lengths
    output: Lengths
    input: Lengths


def check_block(
    body: bytes, max_chars: int, newlines: npt.NDArray[np.intp] | None = None
) -> Block | None:
    """`body`: complete lines without the last newline (at `newlines`, found here if not given).
    The lengths if every line is a valid instruction record (values not blank, none longer than
    `max_chars`), else None."""
    if not body:
        return None
    data = np.frombuffer(body, dtype=np.uint8)
    if newlines is None:
        newlines = np.flatnonzero(data == _NEWLINE)
    if not _one_object_per_line(data, newlines):
        return None
    plain = _plain_block(body, data, newlines) if body.find(b"\\") < 0 else None
    if plain is not None:
        return plain if _within(plain, max_chars) else None
    return _decoded_block(body, data, newlines, max_chars)


def _within(block: Block, max_chars: int) -> bool:
    """Instruction and output not empty; no value longer than `max_chars`."""
    if min(block.instruction.min(), block.output.min()) < 1:
        return False
    if max(block.instruction.max(), block.output.max()) > max_chars:
        return False
    return not (block.input.size and block.input.max() > max_chars)


def _decoded_block(
    body: bytes, data: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp], max_chars: int
) -> Block | None:
    """Decoded to strings: types checked by msgspec, blank values by str.isspace."""
    try:
        records = _DECODER.decode_lines(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    n = len(records)
    if n != newlines.size + 1:
        return None
    with_input = n - list(map(_INPUT, records)).count(None)
    found = _lengths_from_bytes(body, data, n, with_input)
    if found is None:
        block = _lengths_from_records(records, n)
        suspect = True
    else:
        block, suspect = found
    if not _within(block, max_chars):
        return None
    # A value of only whitespace (" ", "\n", "\u3000"), checked exactly on the decoded strings
    # when a value starts with a character that could begin one.
    if suspect and (
        any(map(str.isspace, map(_INSTRUCTION, records)))
        or any(map(str.isspace, map(_OUTPUT, records)))
    ):
        return None
    return block


def _plain_block(
    body: bytes, data: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp]
) -> Block | None:
    """A block of plain text (no escape, no control character but the newlines), checked and
    measured on its bytes alone, without a parser.

    Without a backslash every quote opens or closes a string, so the quotes' positions are the
    strings. What lies between them must be exactly the canonical JSON Lines separators (as
    `json.dumps` writes them, with or without spaces): `{` before a line's first string, `:` or
    `: ` after a key, `,` or `, ` after a value, `}` + newline + `{` between records and `}` at
    the end. Then every line is one object whose values are all strings, the keys are compared
    byte for byte with the three names, and each record has instruction and output once and input
    at most once. (The bytes are valid UTF-8 already: the raw scanner checked them.) Any doubt
    (other spacing, another key, a value that may be blank) returns None: the decoding path,
    which names the line, decides."""
    if int(np.count_nonzero(data < 0x20)) != newlines.size:
        return None
    quotes = np.flatnonzero(data == _QUOTE)
    if not quotes.size or quotes.size % 4:
        return None
    opens, closes = quotes[0::2], quotes[1::2]
    if opens[0] != 1 or closes[-1] != data.size - 2:
        return None  # the block starts with `{"` and ends with `"}`
    # The separator after each string but the last: its first two bytes and its length.
    after = closes[:-1]
    gap = opens[1:] - after
    first = data[after + 1]
    second = data[after + 2]  # inside the block: the next string's quote comes later
    short = (gap == 2) | ((gap == 3) & (second == _SPACE))
    # Strings alternate key, value: even separators follow a key, odd ones a value.
    if not np.all((first[0::2] == _COLON) & short[0::2]):
        return None
    v_after, v_gap = after[1::2], gap[1::2]
    boundary = (
        (first[1::2] == _CLOSE)
        & (v_gap == 4)
        & (second[1::2] == _NEWLINE)
        & (data[v_after + 3] == _OPEN)
    )
    if not np.all(((first[1::2] == _COMMA) & short[1::2]) | boundary):
        return None
    if int(np.count_nonzero(boundary)) != newlines.size:
        return None  # a newline inside a string
    n = newlines.size + 1
    # The record of each key/value pair: how many record boundaries come before it.
    record = np.zeros(opens.size // 2, dtype=np.intp)
    np.cumsum(boundary, out=record[1:])
    sizes = closes - opens - 1
    if not body.isascii():
        sizes = sizes - _counts_in(np.flatnonzero((data & 0xC0) == 0x80), opens, closes)
    key_opens, key_sizes, values = opens[0::2], sizes[0::2], sizes[1::2]
    # Each key compared whole, as 8-byte words read at its opening quote: every key is followed
    # by at least `:"v"}`, so a word never runs past the block.
    words = np.ndarray((data.size - 7,), dtype="<u8", buffer=body, strides=(1,))
    found = {}
    named = 0
    for name, (size, spelling) in _KEYS.items():
        mine = np.flatnonzero(key_sizes == size)
        at = key_opens[mine]
        if not all(np.all(words[at + offset] == word) for offset, word in spelling):
            return None  # another key of the same length
        counts = np.bincount(record[mine], minlength=n)
        if np.any(counts > 1) or (name != "input" and np.any(counts == 0)):
            return None  # a key twice in one record, or a required key missing
        named += mine.size
        found[name] = values[mine]
    if named != key_sizes.size:
        return None  # a key of another length
    value_first = data[opens[1::2] + 1]
    if np.any((value_first == _SPACE) | (value_first >= 0x80)):
        return None  # maybe blank: the decoding path checks exactly
    return Block(n, found["instruction"], found["output"], found["input"])


def _one_object_per_line(data: npt.NDArray[np.uint8], newlines: npt.NDArray[np.intp]) -> bool:
    """Every line starts with `{` and ends with `}` (a CR before the newline is allowed); an
    empty line fails the first test (its first byte is a newline, or the block ended)."""
    last = data.size - 1
    if (
        data[0] != _OPEN
        or data[last] not in (_CLOSE, _CR)
        or (newlines.size and newlines[-1] == last)
    ):
        return False
    if not np.all(data[newlines + 1] == _OPEN):
        return False
    before = data[newlines - 1]
    if np.all(before == _CLOSE) and data[last] == _CLOSE:
        return True
    # CRLF lines: the byte before each CR.
    ends = np.append(newlines, data.size) - 1
    ends = ends - (data[ends] == _CR)
    return bool(np.all(data[ends] == _CLOSE))


def _lengths_from_records(records: list[_Instruction], n: int) -> Block:
    inputs = [value for value in map(_INPUT, records) if value is not None]
    return Block(
        n,
        np.fromiter(map(len, map(_INSTRUCTION, records)), dtype=np.int64, count=n),
        np.fromiter(map(len, map(_OUTPUT, records)), dtype=np.int64, count=n),
        np.fromiter(map(len, inputs), dtype=np.int64, count=len(inputs)),
    )


def _counts_in(positions: npt.NDArray[np.intp], opens: Lengths, closes: Lengths) -> Lengths:
    """How many of the sorted `positions` fall inside each string (between its quotes)."""
    return np.searchsorted(positions, closes) - np.searchsorted(positions, opens)


def _lengths_from_bytes(
    body: bytes, data: npt.NDArray[np.uint8], n: int, with_input: int
) -> tuple[Block, bool] | None:
    """Every string's length from its quotes, when each quote in the block delimits a string.

    The decode leaves only strings as keys and values (or a null input) and only these three
    keys. So the block has exactly 4n + 2*with_input strings, key and value in turn, unless a
    value is null, a key repeats or a quote is escaped: each of those only adds quotes, so the
    exact count rules all three out. Keys are then told apart by their size."""
    quotes = np.flatnonzero(data == _QUOTE)
    if quotes.size != 2 * (4 * n + 2 * with_input):
        return None
    opens, closes = quotes[0::2], quotes[1::2]
    sizes = closes - opens - 1
    if body.find(b"\\") >= 0:
        escapes = np.flatnonzero(data == _BACKSLASH)
        after = data[np.minimum(escapes + 1, data.size - 1)]
        # `\\` and `\uXXXX` are not two bytes for one character: the decoded strings count.
        if np.any((after == _BACKSLASH) | (after == ord("u"))):
            return None
        sizes -= _counts_in(escapes, opens, closes)
    if not body.isascii():
        continuation = np.flatnonzero((data & 0xC0) == 0x80)
        sizes -= _counts_in(continuation, opens, closes)
    keys, values = sizes[0::2], sizes[1::2]
    block = Block(
        n,
        values[keys == _KEY_SIZES["instruction"]],
        values[keys == _KEY_SIZES["output"]],
        values[keys == _KEY_SIZES["input"]],
    )
    if block.instruction.size != n or block.output.size != n or block.input.size != with_input:
        return None
    # A blank value starts with a space, an escape or a non-ASCII character: only then is the
    # exact check worth its cost.
    first = data[opens[1::2] + 1]
    suspect = bool(np.any((first <= 0x20) | (first == _BACKSLASH) | (first >= 0x80)))
    return block, suspect
