"""Running statistics kept in constant memory: text lengths (a fixed histogram), labels, tokens."""

from bisect import bisect_left
from collections import Counter
from typing import Any

import numpy as np
import numpy.typing as npt

# Upper bounds (characters) of the length histogram's buckets; the last one is open.
BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
# A rough, model-independent estimate: about four characters per token for English text.
CHARS_PER_TOKEN = 4


class LengthStats:
    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.min: int | None = None
        self.max = 0
        self.histogram = np.zeros(len(BUCKETS) + 1, dtype=np.int64)
        self._counts = [0] * (len(BUCKETS) + 1)

    def add_array(self, lengths: npt.NDArray[Any]) -> None:
        if lengths.size == 0:
            return
        self.count += int(lengths.size)
        self.total += int(lengths.sum(dtype=np.int64))
        low, high = int(lengths.min()), int(lengths.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = max(self.max, high)
        self.histogram += np.bincount(
            np.searchsorted(BUCKETS, lengths, side="left"), minlength=len(BUCKETS) + 1
        )

    def add(self, length: int) -> None:
        """One value (the JSONL path, per record): plain Python, a numpy call per row costs more."""
        self.count += 1
        self.total += length
        if self.min is None or length < self.min:
            self.min = length
        if length > self.max:
            self.max = length
        self._counts[bisect_left(BUCKETS, length)] += 1

    def as_dict(self) -> dict[str, Any]:
        histogram = self.histogram + np.array(self._counts, dtype=np.int64)
        labels = [f"<={b}" for b in BUCKETS] + [f">{BUCKETS[-1]}"]
        return {
            "min": self.min or 0,
            "max": self.max,
            "mean": round(self.total / self.count, 1) if self.count else 0.0,
            "histogram": {label: int(n) for label, n in zip(labels, histogram, strict=True) if n},
        }


class DatasetStats:
    def __init__(self) -> None:
        self.lengths: dict[str, LengthStats] = {}
        self.labels: Counter[str] = Counter()
        self.total_chars = 0
        self.duplicate_rows = 0

    def column(self, name: str) -> LengthStats:
        stats = self.lengths.get(name)
        if stats is None:
            stats = self.lengths[name] = LengthStats()
        return stats

    def as_dict(self, rows: int) -> dict[str, Any]:
        total_chars = sum(s.total for s in self.lengths.values())
        out: dict[str, Any] = {
            "rows": rows,
            "text_length": {name: s.as_dict() for name, s in self.lengths.items()},
            "estimated_tokens": total_chars // CHARS_PER_TOKEN,
            "duplicate_rows": self.duplicate_rows,
        }
        if self.labels:
            out["label_distribution"] = dict(self.labels.most_common(100))
            out["classes"] = len(self.labels)
        return out
