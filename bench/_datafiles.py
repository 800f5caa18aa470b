"""Generated training files for the data-service benchmarks (written in a temporary folder)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "wizards",
    "quietly",
    "judge",
    "every",
    "boxing",
    "match",
    "model",
    "data",
    "training",
    "sentence",
    "label",
    "embedding",
    "classifier",
    "token",
    "vector",
    "gradient",
    "epoch",
    "loss",
]


def _sentences(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choices(WORDS, k=rng.randint(6, 30))) for _ in range(n)]


def write_csv(path: Path, size: int, seed: int = 7) -> int:
    """A classifier CSV (text,label) of at least `size` bytes; returns its size."""
    rng = random.Random(seed)
    labels = ("positive", "negative", "neutral", "mixed")
    rows = _sentences(rng, 100_000)
    # One ~8 MB chunk of varied rows, repeated (generating 1 GB row by row takes minutes).
    chunk = "".join(
        f'"{s}, {i}",{labels[i % 4]}\n' if i % 5 == 0 else f"{s} {i},{labels[i % 4]}\n"
        for i, s in enumerate(rows)
    ).encode()
    with path.open("wb") as f:
        f.write(b"text,label\n")
        written = 11
        while written < size:
            f.write(chunk)
            written += len(chunk)
    return path.stat().st_size


def write_jsonl(path: Path, size: int, seed: int = 7) -> int:
    """An LLM LoRA JSONL file (instruction/input/output) of at least `size` bytes."""
    rng = random.Random(seed)
    lines = [
        json.dumps({"instruction": f"Rewrite #{n}: {s}", "input": s[:40], "output": s.upper()})
        for n, s in enumerate(_sentences(rng, 50_000))
    ]
    chunk = ("\n".join(lines) + "\n").encode()
    with path.open("wb") as f:
        written = 0
        while written < size:
            f.write(chunk)
            written += len(chunk)
    return path.stat().st_size


class _NoPandas:
    """A meta-path finder that makes `import pandas` fail, as in a deployment without it."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the benchmark)")


def block_pandas() -> None:
    import sys

    sys.meta_path.insert(0, _NoPandas())  # type: ignore[arg-type]
