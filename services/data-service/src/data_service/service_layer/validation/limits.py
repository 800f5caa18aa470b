"""The limits validation enforces (settings fill them in; tests shrink them)."""

from dataclasses import dataclass

BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Limits:
    # Errors listed in a report (reading stops there): enough to fix most files in one round,
    # about 15 KB of answer.
    max_errors: int = 100
    # A physical line longer than this is refused (it is at least one block long, so checking
    # the stretches between newlines that cross a block boundary is enough).
    max_line_bytes: int = BLOCK_BYTES
    max_field_chars: int = 100_000
    min_rows: int = 10
    max_classes: int = 10_000
    # Duplicate rows are warnings; finding them costs memory (JSONL) or time (CSV), so only the
    # first this many rows are checked.
    duplicate_memory_rows: int = 500_000
    # A JSON line nesting arrays and objects deeper than this is refused (`nesting_too_deep`):
    # parsers recurse per level. The record shapes nest three deep; 64 leaves room for any
    # metadata a line carries besides them.
    max_nesting: int = 64

    def __post_init__(self) -> None:
        if self.max_line_bytes < BLOCK_BYTES:
            raise ValueError(f"max_line_bytes must be at least {BLOCK_BYTES}")
