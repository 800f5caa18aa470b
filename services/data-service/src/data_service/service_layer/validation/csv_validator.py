"""CSV validation on pyarrow's streaming reader: one pass, vectorised checks, lines named.

pyarrow numbers records, not lines; a quoted value may span lines. The line of a record is its
record number plus the newlines inside the values before it, counted per batch (vectorised), so
every problem names the physical line an editor shows.
"""

import contextlib
import queue
import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from data_service.adapters.feed import Aborted, BlockReader
from data_service.domain.report import Problem, Problems
from data_service.service_layer.validation.arrow_text import char_lengths, newlines_per_value
from data_service.service_layer.validation.csv_problems import (
    InvalidRow,
    arrow_problem,
    header_problem,
    invalid_row_problem,
    parse_header,
    unclosed_quote_problem,
)
from data_service.service_layer.validation.csv_quotes import QuoteScanner
from data_service.service_layer.validation.limits import Limits
from data_service.service_layer.validation.stats import DatasetStats

# pyarrow's block: a record must fit in one. Memory grows about six times faster than the
# read-ahead (a block is held as bytes, parsed and converted at once), so it stays small.
PYARROW_BLOCK = 2 << 20


class CsvValidator:
    """Fed blocks from the upload; pyarrow parses them in a thread of its own."""

    def __init__(self, limits: Limits, problems: Problems, header_block: bytes) -> None:
        self._limits = limits
        self._problems = problems
        # Room for the longest line the raw scanner lets through, twice (a record may span lines).
        self._block_size = max(PYARROW_BLOCK, 2 * limits.max_line_bytes)
        self.stats = DatasetStats()
        self.rows = 0
        first_line = header_block.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
        self.delimiter, self.columns, self.shape = parse_header(first_line)
        # pyarrow matches column_types on the header as written ("Label ", "TEXT").
        self._header = list(self.columns)
        self._reader = BlockReader(read_credits=4)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._invalid: list[InvalidRow] = []
        self._next_record = 2  # pyarrow's number of the next record (the header is 1)
        self._extra_newlines = 0  # newlines inside values before that record
        self.stopped = False
        # Lines where a quote left open was reported: pyarrow's view of the same record (too few
        # fields, a record too long) would only repeat it.
        self._quote_lines: set[int] = set()
        self._quotes = QuoteScanner(self.delimiter, self._quote_left_open)
        if self.shape is None:
            self._problems.add(header_problem(self.columns))
            self.stopped = True
        else:
            self.columns = [c.strip().lower() for c in self.columns]
            self._thread = threading.Thread(target=self._run, name="csv-validator", daemon=True)
            self._thread.start()

    # --- producer side (the upload's thread)
    def feed(self, block: bytes, lines_before: int) -> None:
        """`lines_before`: the newlines in the file before `block`."""
        if self._thread is not None and not self.stopped:
            # Before pyarrow sees the block, so its view of a record is judged after this one.
            self._quotes.feed(block, lines_before)
            self._reader.put(block)

    def finish(self) -> None:
        if self._thread is None:
            return
        if self.stopped:
            self._reader.abort()
        else:
            self._quotes.finish()
            self._reader.close_input()
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def abort(self) -> None:
        if self._thread is not None:
            self._reader.abort()
            self._thread.join()

    # --- consumer side (pyarrow's thread)
    def _on_invalid(self, row: Any) -> str:
        number = row.number if row.number is not None and row.number >= 0 else -1
        self._invalid.append(InvalidRow(number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    def _run(self) -> None:
        """Checks batches while a second thread parses the next ones (both release the GIL)."""
        batches: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=2)
        parser = threading.Thread(
            target=self._parse, args=(batches,), name="csv-parser", daemon=True
        )
        parser.start()
        try:
            while True:
                item = batches.get()
                if item is None:
                    self._settle_invalid(0, None, final=True)
                    return
                if isinstance(item, Aborted):
                    self.stopped = True
                    return
                if isinstance(item, pa.ArrowInvalid):
                    self._settle_invalid(0, None, final=True)
                    line = self._next_record + self._extra_newlines
                    if line not in self._quote_lines:
                        self._problems.add(arrow_problem(str(item), line, self._block_size))
                    self.stopped = True
                    return
                if isinstance(item, BaseException):
                    raise item
                self._batch(item)
                self._reader.batch_done()
                if self._problems.full:
                    self.stopped = True
                    return
        except BaseException as exc:
            # A bug, not a verdict on the file: stop reading (nothing may wait on this thread
            # forever) and let finish() raise it.
            self._failure = exc
            self.stopped = True
        finally:
            if self.stopped:
                self._reader.abort()
                # Unblock the parser if it waits to hand over a batch, then let it end.
                while parser.is_alive():
                    with contextlib.suppress(queue.Empty):
                        batches.get(timeout=0.05)
            parser.join()

    def _parse(self, out: "queue.Queue[pa.RecordBatch | BaseException | None]") -> None:
        try:
            reader = pacsv.open_csv(
                self._reader,
                read_options=pacsv.ReadOptions(block_size=self._block_size, use_threads=False),
                parse_options=pacsv.ParseOptions(
                    delimiter=self.delimiter,
                    newlines_in_values=True,
                    ignore_empty_lines=False,
                    invalid_row_handler=self._on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    check_utf8=False,  # the raw scanner checked it, naming the line
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    column_types={name: pa.string() for name in self._header},
                ),
            )
            for batch in reader:
                if self.stopped:
                    return
                out.put(batch)
            out.put(None)
        except BaseException as exc:  # handed to the checking thread, which decides
            if not self.stopped:
                out.put(exc)

    def _quote_left_open(self, open_line: int, close_line: int | None) -> None:
        self._quote_lines.add(open_line)
        self._problems.add(unclosed_quote_problem(open_line, close_line))

    def _batch(self, batch: pa.RecordBatch) -> None:
        n = batch.num_rows
        names = batch.schema.names
        columns = {name.strip().lower(): batch.column(i) for i, name in enumerate(names)}
        newlines = None
        for col in columns.values():
            counts = newlines_per_value(col)
            if counts is not None:
                newlines = counts if newlines is None else newlines + counts
        lines = self._settle_invalid(n, newlines)
        self.rows += n
        if n == 0:
            return
        self._check_rows(columns, n, lines)

    def _settle_invalid(self, n: int, newlines: Any, *, final: bool = False) -> Any:
        """Report the invalid rows of this batch and return a function: row index -> line."""
        start = self._next_record
        base = self._extra_newlines
        if not self._invalid and newlines is None:
            # The common case: one record per line, nothing skipped.
            self._next_record += n

            def simple_line_of(index: int) -> int:
                return start + index + base

            return simple_line_of
        pending = sorted(self._invalid, key=lambda r: r.number)
        k = 0
        while True:
            found = sum(1 for r in pending if 0 <= r.number < self._next_record + n + k)
            if found == k:
                break
            k = found
        if final:
            # The end of the file: whatever is still pending belongs here.
            k = len(pending)
        mine, self._invalid = pending[:k], pending[k:]
        total = n + k
        per_record = np.zeros(total, dtype=np.int64)
        invalid_positions = [r.number - start for r in mine if 0 <= r.number - start < total]
        valid_mask = np.ones(total, dtype=bool)
        valid_mask[invalid_positions] = False
        if newlines is not None:
            per_record[valid_mask] = newlines
        for r in mine:
            pos = r.number - start
            if 0 <= pos < total:
                per_record[pos] = r.newlines
        before = np.concatenate(([0], np.cumsum(per_record)[:-1])) if total else per_record
        for r in mine:
            pos = r.number - start
            line = (r.number + base + int(before[pos])) if 0 <= pos < total else None
            if line not in self._quote_lines:
                self._problems.add(invalid_row_problem(r, line, self.delimiter))
        valid_positions = np.nonzero(valid_mask)[0]
        self._next_record += total
        self._extra_newlines += int(per_record.sum())

        def line_of(index: int) -> int:
            pos = int(valid_positions[index])
            return start + pos + base + int(before[pos])

        return line_of

    def _check_rows(self, columns: dict[str, pa.Array], n: int, line_of: Any) -> None:
        assert self.shape is not None
        limits = self._limits
        found: list[tuple[int, Problem]] = []
        lengths = {name: char_lengths(col) for name, col in columns.items()}
        empty_all = np.logical_and.reduce([arr == 0 for arr in lengths.values()])
        empty_rows = np.nonzero(empty_all)[0]
        empty_set = set(empty_rows[: limits.max_errors].tolist())
        for i in empty_rows[: limits.max_errors]:
            found.append((int(i), Problem("empty_row", "The row is empty.", line=line_of(int(i)))))
        for name, arr in lengths.items():
            if name not in self.shape.numeric and name != self.shape.label:
                self.stats.column(name).add_array(arr)
            for i in np.nonzero(arr == 0)[0][: limits.max_errors]:
                if int(i) not in empty_set:
                    found.append(
                        (
                            int(i),
                            Problem("empty_value", "The value is empty.", line_of(int(i)), name),
                        )
                    )
            for i in np.nonzero(arr > limits.max_field_chars)[0][: limits.max_errors]:
                found.append(
                    (
                        int(i),
                        Problem(
                            "field_too_long",
                            f"The value has {int(arr[i]):,} characters; the limit is "
                            f"{limits.max_field_chars:,}.",
                            line_of(int(i)),
                            name,
                        ),
                    )
                )
        for name in self.shape.numeric:
            found.extend(self._check_numbers(name, columns[name], line_of))
        if self.shape.label is not None:
            self._count_labels(columns[self.shape.label])
        self._duplicates(columns, n, line_of)
        for _, problem in sorted(found, key=lambda f: f[0]):
            # A record that swallowed lines after a quote left open has only that problem.
            if problem.line not in self._quote_lines:
                self._problems.add(problem)

    def _check_numbers(self, name: str, col: pa.Array, line_of: Any) -> list[tuple[int, Problem]]:
        try:
            values = pc.cast(col, pa.float64())
            bad = np.nonzero(~np.isfinite(values.to_numpy(zero_copy_only=False)))[0]
        except pa.ArrowInvalid:
            bad_list = []
            for i, text in enumerate(col.to_pylist()):
                try:
                    if not np.isfinite(float(text)):
                        bad_list.append(i)
                except ValueError:
                    if text:  # an empty value is reported as such
                        bad_list.append(i)
            bad = np.array(bad_list, dtype=np.int64)
        return [
            (
                int(i),
                Problem("not_a_number", "The value is not a finite number.", line_of(int(i)), name),
            )
            for i in bad[: self._limits.max_errors]
        ]

    def _count_labels(self, col: pa.Array) -> None:
        counts = pc.value_counts(col)
        for label, count in zip(
            counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
        ):
            if label == "":
                continue
            if label in self.stats.labels or len(self.stats.labels) < self._limits.max_classes:
                self.stats.labels[label] += count
            elif not any(p.code == "too_many_classes" for p in self._problems.errors):
                self._problems.add(
                    Problem(
                        "too_many_classes",
                        f"More than {self._limits.max_classes:,} distinct labels.",
                        column="label",
                    )
                )

    def _duplicates(self, columns: dict[str, pa.Array], n: int, line_of: Any) -> None:
        """Rows whose first column repeats inside a batch are counted; the first few are named (a
        warning). Checking whole rows across the file would cost memory growing with the file,
        and hashing every value halves the throughput: only the first rows are checked."""
        if self.rows - n >= self._limits.duplicate_memory_rows:
            return
        key = next(iter(columns.values()))
        dupes = n - len(pc.unique(key))
        if dupes <= 0:
            return
        self.stats.duplicate_rows += dupes
        if len(self._problems.warnings) >= 3:
            return
        seen: dict[str, int] = {}
        for i, value in enumerate(key.to_pylist()):
            if value in seen:
                self._problems.warn(
                    Problem(
                        "duplicate_row",
                        f"The first column repeats line {line_of(seen[value])}.",
                        line=line_of(i),
                    )
                )
                if len(self._problems.warnings) >= 3:
                    return
            else:
                seen[value] = i
