"""Byte-level checks every file gets before parsing: encoding, binary content, line length.

They run on each block as it streams in, so a binary or mis-encoded upload is refused at the
first bad block with the line it is on, and the parsers only ever see valid UTF-8.
"""

import codecs

import numpy as np
import numpy.typing as npt

from data_service.domain.report import Problem, Problems
from data_service.service_layer.validation.limits import Limits

UTF8_BOM = codecs.BOM_UTF8
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


Positions = npt.NDArray[np.intp]


def newline_positions(data: bytes) -> Positions:
    """Where `data`'s newlines are (numpy compares several times faster than bytes.count)."""
    return np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)


class RawScanner:
    def __init__(self, limits: Limits, problems: Problems) -> None:
        self._limits = limits
        self._problems = problems
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.lines_before = 0  # newlines seen before the current block
        # The last block's newlines, kept when asked (the JSON Lines validator splits on them).
        self.keep_newlines = False
        self.newlines: Positions = np.empty(0, dtype=np.intp)
        self._since_newline = 0
        self.started = False
        self.bom = False
        self.size = 0
        self.fatal = False

    def _fail(self, code: str, message: str, line: int | None) -> None:
        self.fatal = True
        self._problems.add(Problem(code, message, line=line))

    def _line_at(self, block: bytes, offset: int) -> int:
        return self.lines_before + block.count(b"\n", 0, max(offset, 0)) + 1

    def feed(self, block: bytes) -> bytes:
        """Check `block`; return it without a leading BOM. Sets `fatal` on a file-level error."""
        if not self.started:
            self.started = True
            if block.startswith(_UTF16_BOMS):
                self._fail(
                    "unsupported_encoding",
                    "The file is UTF-16; save it as UTF-8 and upload it again.",
                    1,
                )
                return block
            if block.startswith(UTF8_BOM):
                self.bom = True
                block = block[len(UTF8_BOM) :]
        self.size += len(block)
        nul = block.find(b"\x00")
        if nul >= 0:
            self._fail(
                "binary_content",
                "The file contains binary data (a NUL byte); upload a UTF-8 text file.",
                self._line_at(block, nul),
            )
            return block
        try:
            # ASCII needs no decoding, unless a character began at the end of the last block.
            if not block.isascii() or self._decoder.getstate()[0]:
                self._decoder.decode(block, False)
        except UnicodeDecodeError as exc:
            self._fail(
                "invalid_utf8",
                f"Invalid UTF-8 (byte 0x{block[exc.start]:02x} at column {self._column(block, exc.start)}); "
                "save the file as UTF-8.",
                self._line_at(block, exc.start),
            )
            return block
        self._check_line_length(block)
        if self.keep_newlines:
            self.newlines = newline_positions(block)
            self.lines_before += self.newlines.size
        else:
            self.lines_before += int(np.count_nonzero(np.frombuffer(block, np.uint8) == 10))
        return block

    @staticmethod
    def _column(block: bytes, offset: int) -> int:
        return offset - (block.rfind(b"\n", 0, offset) + 1) + 1

    def _check_line_length(self, block: bytes) -> None:
        first = block.find(b"\n")
        if first < 0:
            self._since_newline += len(block)
            if self._since_newline > self._limits.max_line_bytes:
                self._too_long(self.lines_before + 1)
            return
        if self._since_newline + first > self._limits.max_line_bytes:
            self._too_long(self.lines_before + 1)
            return
        self._since_newline = len(block) - block.rfind(b"\n") - 1

    def _too_long(self, line: int) -> None:
        limit = self._limits.max_line_bytes
        self._fail(
            "line_too_long",
            f"The line is longer than {limit:,} bytes (an overlong field, or an unclosed quote).",
            line,
        )

    def finish(self) -> None:
        if self.fatal:
            return
        try:
            self._decoder.decode(b"", True)
        except UnicodeDecodeError:
            self._fail(
                "invalid_utf8", "The file ends inside a UTF-8 character.", self.lines_before + 1
            )
