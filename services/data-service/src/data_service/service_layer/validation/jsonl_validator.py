"""JSON Lines validation for LLM LoRA data: instruction/input/output (or response), or chat
`messages`. msgspec decodes each line straight into a typed record (no dict per line)."""

from typing import Any

import msgspec
import numpy as np

from data_service.domain.report import Problem, Problems
from data_service.domain.shapes import CHAT_ROLES
from data_service.service_layer.validation.jsonl_block import check_block
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.nesting import may_nest_deeper, nesting_depth
from data_service.service_layer.validation.raw import Positions, newline_positions
from data_service.service_layer.validation.stats import DatasetStats


class Message(msgspec.Struct):
    role: str
    content: str


class Record(msgspec.Struct):
    instruction: str | None = None
    input: str | None = None
    output: str | None = None
    response: str | None = None
    messages: list[Message] | None = None


_DECODER = msgspec.json.Decoder(Record)


def _decode_problem(exc: Exception, line_no: int) -> Problem:
    text = str(exc)
    if isinstance(exc, msgspec.ValidationError):
        # "Expected `str`, got `int` - at `$.output`" -> key output
        key = None
        if " - at `$." in text:
            key = text.rsplit(" - at `$.", 1)[1].rstrip("`")
        elif "got `" in text:
            return Problem("not_an_object", f"Each line must be a JSON object: {text}.", line_no)
        return Problem("wrong_type", text.split(" - at ")[0] + ".", line_no, key)
    return Problem("invalid_json", f"Not valid JSON: {text}.", line_no)


class JsonlValidator:
    def __init__(self, limits: Limits, problems: Problems) -> None:
        self._limits = limits
        self._problems = problems
        self.stats = DatasetStats()
        self.rows = 0
        self.shape: str | None = None
        self._line = 0
        self._rest = b""
        self._pending_blank: list[int] = []
        self._seen: set[int] = set()
        self.stopped = False
        self.keys: set[str] = set()
        self._naming_duplicates = True

    def feed(self, block: bytes, newlines: Positions | None = None) -> None:
        """`newlines`: the block's newline positions, if known (else found here)."""
        if self.stopped:
            return
        if newlines is None:
            newlines = newline_positions(block)
        if not newlines.size:
            self._rest += block
            return
        end = int(newlines[-1])
        # The unfinished line carried over, then this block's complete lines: one copy.
        body = b"".join((self._rest, memoryview(block)[:end]))
        inner = newlines[:-1] + len(self._rest)
        self._rest = block[end + 1 :]
        if (
            self.shape in (None, "instruction")
            and not self._pending_blank
            and self._fast(body, inner)
        ):
            return
        self._slow_lines(body.split(b"\n"))

    def _fast(self, body: bytes, newlines: Positions) -> bool:
        """A whole block of valid instruction records at once (see jsonl_block)."""
        block = check_block(body, self._limits.max_field_chars, newlines)
        if block is None:
            return False
        n = block.rows
        first = self._line + 1
        self._line += n
        self.rows += n
        self.shape = "instruction"
        column = self.stats.column
        column("instruction").add_array(block.instruction)
        column("output").add_array(block.output)
        if block.input.size:
            column("input").add_array(block.input)
        seen = self._seen
        if self.rows - n < self._limits.duplicate_memory_rows:
            lines = body.split(b"\n")
            before = len(seen)
            seen.update(map(hash, lines))
            dupes = len(lines) - (len(seen) - before)
            if dupes:
                self.stats.duplicate_rows += dupes
                if self._naming_duplicates:
                    self._name_duplicates(lines, first)
        return True

    def _name_duplicates(self, lines: list[bytes], first: int) -> None:
        """Name the first few duplicates (a warning), then stop looking."""
        positions: dict[bytes, int] = {}
        named = 0
        for i, raw in enumerate(lines):
            if raw in positions:
                self._problems.warn(
                    Problem(
                        "duplicate_row",
                        f"The record repeats line {first + positions[raw]}.",
                        first + i,
                    )
                )
                named += 1
                if named >= 3:
                    break
            else:
                positions[raw] = i
        if not named:
            last = first + len(lines) - 1
            self._problems.warn(
                Problem(
                    "duplicate_row", f"Records in lines {first}-{last} repeat earlier ones.", first
                )
            )
        self._naming_duplicates = False

    def _slow_lines(self, lines: list[bytes]) -> None:
        """The hot loop: the common, valid instruction record costs a decode and a few len()s;
        anything unusual goes to the slower, explaining path (`_one`)."""
        decode = _DECODER.decode
        limit = self._limits.max_field_chars
        seen = self._seen
        memory = self._limits.duplicate_memory_rows
        nesting = self._limits.max_nesting
        lengths: dict[str, list[int]] = {"instruction": [], "input": [], "output": []}
        li, lp, lo = lengths["instruction"], lengths["input"], lengths["output"]
        line_no = self._line
        for raw in lines:
            line_no += 1
            if (
                self.shape == "instruction"
                and not self._pending_blank
                and raw
                and not raw.isspace()
            ):
                try:
                    record = decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
                    record = None  # RecursionError: nested too deeply; `_one` says so
                if (
                    record is not None
                    and record.messages is None
                    and record.instruction is not None
                    and record.output is not None
                    and not may_nest_deeper(raw, nesting)
                ):
                    a, o = len(record.instruction), len(record.output)
                    p = len(record.input) if record.input is not None else -1
                    if (
                        0 < a <= limit
                        and 0 < o <= limit
                        and p <= limit
                        and not record.instruction.isspace()
                        and not record.output.isspace()
                    ):
                        self.rows += 1
                        li.append(a)
                        lo.append(o)
                        if p >= 0:
                            lp.append(p)
                        if self.rows <= memory:
                            key = hash(raw)
                            if key in seen:
                                self._duplicate(line_no)
                            else:
                                seen.add(key)
                        continue
            self._line = line_no
            self._one(raw)
            if self._problems.full:
                self.stopped = True
                break
        self._line = line_no
        for name, values in lengths.items():
            if values:
                self.stats.column(name).add_array(np.array(values, dtype=np.int64))

    def _duplicate(self, line_no: int) -> None:
        self.stats.duplicate_rows += 1
        if len(self._problems.warnings) < 3:
            self._problems.warn(
                Problem("duplicate_row", "The record repeats an earlier one.", line_no)
            )

    def finish(self) -> None:
        if self.stopped:
            return
        if self._rest.strip():
            self._slow_lines([self._rest])
        # Blank lines at the very end are harmless; blank lines between records are not.
        self._pending_blank.clear()

    def abort(self) -> None:
        self.stopped = True

    def _one(self, raw: bytes) -> None:
        line_no = self._line
        if not raw.strip():
            self._pending_blank.append(line_no)
            return
        if self._pending_blank:
            for blank in self._pending_blank:
                self._problems.add(Problem("empty_row", "The line is empty.", blank))
            self._pending_blank.clear()
        limit = self._limits.max_nesting
        if may_nest_deeper(raw, limit) and (depth := nesting_depth(raw)) > limit:
            self._problems.add(
                Problem(
                    "nesting_too_deep",
                    f"The line nests arrays and objects {depth:,} levels deep; the limit is "
                    f"{limit}.",
                    line_no,
                )
            )
            return
        try:
            record = _DECODER.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._problems.add(_decode_problem(exc, line_no))
            return
        self.rows += 1
        if record.messages is not None:
            self._chat(record, line_no)
        else:
            self._instruction(record, line_no)
        if self.rows <= self._limits.duplicate_memory_rows:
            key = hash(raw)
            if key in self._seen:
                self._duplicate(line_no)
            else:
                self._seen.add(key)

    def _shape(self, shape: str, line_no: int) -> None:
        if self.shape == shape:
            return
        if self.shape is None:
            self.shape = shape
        elif self.shape != shape:
            self._problems.add(
                Problem(
                    "mixed_shapes",
                    f"This record is in the {shape} shape but earlier ones are {self.shape}; "
                    "use one shape per file.",
                    line_no,
                )
            )

    def _text(self, value: str, line_no: int, key: str, *, required: bool = True) -> int:
        n = len(value)
        if 0 < n <= self._limits.max_field_chars and not value.isspace():
            return n  # the common case, without allocating
        if required and (not value or value.isspace()):
            self._problems.add(Problem("empty_value", "The value is empty.", line_no, key))
        elif len(value) > self._limits.max_field_chars:
            self._problems.add(
                Problem(
                    "field_too_long",
                    f"The value has {len(value):,} characters; the limit is "
                    f"{self._limits.max_field_chars:,}.",
                    line_no,
                    key,
                )
            )
        return len(value)

    def _instruction(self, record: Record, line_no: int) -> None:
        answer_key = "output" if record.output is not None else "response"
        answer = record.output if record.output is not None else record.response
        if record.instruction is None or answer is None:
            missing = [
                k for k, v in (("instruction", record.instruction), ("output", answer)) if v is None
            ]
            self._problems.add(
                Problem(
                    "missing_keys",
                    f"Missing {' and '.join(repr(m) for m in missing)}: each record needs "
                    "`instruction` and `output` (or `response`), optional `input`; or chat "
                    "`messages`.",
                    line_no,
                    missing[0],
                )
            )
            return
        self._shape("instruction", line_no)
        column = self.stats.column
        column("instruction").add(self._text(record.instruction, line_no, "instruction"))
        if record.input is not None:
            column("input").add(self._text(record.input, line_no, "input", required=False))
        column(answer_key).add(self._text(answer, line_no, answer_key))

    def _chat(self, record: Record, line_no: int) -> None:
        messages = record.messages
        assert messages is not None
        self._shape("chat", line_no)
        if not messages:
            self._problems.add(
                Problem("empty_value", "`messages` is an empty list.", line_no, "messages")
            )
            return
        total = 0
        has_assistant = False
        for i, message in enumerate(messages):
            key = f"messages[{i}]"
            if message.role not in CHAT_ROLES:
                self._problems.add(
                    Problem(
                        "invalid_role",
                        f"Role {message.role[:40]!r} is not one of {', '.join(sorted(CHAT_ROLES))}.",
                        line_no,
                        f"{key}.role",
                    )
                )
            has_assistant = has_assistant or message.role == "assistant"
            total += self._text(message.content, line_no, f"{key}.content")
        if not has_assistant:
            self._problems.add(
                Problem(
                    "no_assistant_turn",
                    "The conversation has no assistant message to learn from.",
                    line_no,
                    "messages",
                )
            )
        self.stats.column("messages").add(total)

    def summary(self) -> dict[str, Any]:
        return self.stats.as_dict(self.rows)
