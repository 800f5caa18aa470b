"""What validation finds: problems that name the line (and column or key), stats, the verdict."""

import bisect
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

Format = Literal["csv", "jsonl"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file. `line` is 1-based (the header is line 1); None for the file."""

    code: str
    message: str
    line: int | None = None
    column: str | None = None

    def sentence(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        prefix = ", ".join(where)
        return f"{prefix[:1].upper()}{prefix[1:]}: {self.message}" if prefix else self.message

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


def _position(problem: Problem) -> int:
    """Where a problem sorts: by line, those about the whole file first."""
    return 0 if problem.line is None else problem.line


@dataclass
class Problems:
    """Errors up to a cap (counted beyond it), and warnings that do not reject the file.

    The errors kept are the first by line, in line order (same line: as found), whichever order
    the checks running side by side find them in."""

    max_errors: int
    errors: list[Problem] = field(default_factory=list)
    error_count: int = 0
    warnings: list[Problem] = field(default_factory=list)
    # The byte checks and the parser's checks add from different threads.
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def add(self, problem: Problem) -> None:
        with self._lock:
            self.error_count += 1
            bisect.insort_right(self.errors, problem, key=_position)
            if len(self.errors) > self.max_errors:
                self.errors.pop()

    def warn(self, problem: Problem) -> None:
        if len(self.warnings) < self.max_errors:
            self.warnings.append(problem)

    @property
    def full(self) -> bool:
        """Enough errors to reject and report: reading further would only add to the count."""
        return self.error_count >= self.max_errors

    def summary(self) -> str:
        if not self.errors:
            return "The file is valid."
        first = self.errors[0].sentence()
        more = self.error_count - 1
        if more <= 0:
            return f"The file is not valid. {first}"
        plus = "+" if self.full else ""
        return f"The file is not valid. {first} (and {more}{plus} more problem{'s' if more > 1 else ''})"


@dataclass
class ValidationReport:
    format: Format | None
    shape: str | None
    job_types: list[str]
    rows: int
    columns: list[str]
    problems: Problems
    stats: dict[str, Any]
    bom: bool = False
    delimiter: str | None = None

    @property
    def valid(self) -> bool:
        return self.problems.error_count == 0 and self.format is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "summary": self.problems.summary(),
            "format": self.format,
            "shape": self.shape,
            "job_types": self.job_types,
            "rows": self.rows,
            "columns": self.columns,
            "delimiter": self.delimiter,
            "bom": self.bom,
            "error_count": self.problems.error_count,
            "errors_truncated": self.problems.error_count > len(self.problems.errors),
            "errors": [p.as_dict() for p in self.problems.errors],
            "warnings": [p.as_dict() for p in self.problems.warnings],
        }
