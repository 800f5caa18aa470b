"""Optional sampling profiles of a server under load (py-spy, `uv pip install py-spy` into .venv;
never in the lock). `--profile DIR` in a benchmark records the measured window of each server and
prints where its CPU time went, by library (the leaf frame's package) and by hottest function.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# Leaf frame's file path -> a label (first match wins).
_GROUPS = [
    ("sqlalchemy", "sqlalchemy"),
    ("asyncpg", "asyncpg"),
    ("pydantic", "pydantic"),
    ("fastapi", "fastapi"),
    ("starlette", "starlette"),
    ("sse_starlette", "sse-starlette"),
    ("uvicorn", "uvicorn"),
    ("httptools", "uvicorn"),
    ("h11", "h11"),
    ("aio_pika", "aio-pika/aiormq"),
    ("aiormq", "aio-pika/aiormq"),
    ("pamqp", "aio-pika/aiormq"),
    ("jwt", "pyjwt"),
    ("structlog", "structlog"),
    ("prometheus_client", "prometheus-client"),
    ("orjson", "orjson"),
    ("job_api", "job_api (service code)"),
    ("messaging", "messaging (lib)"),
    ("servicekit", "servicekit (lib)"),
    ("contracts", "contracts (lib)"),
    ("asyncio", "asyncio (event loop)"),
    ("uvloop", "asyncio (event loop)"),
    ("selectors", "asyncio (event loop)"),
]
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<path>[^()]*?)(?::(?P<line>\d+))?\)$")


def available() -> bool:
    return py_spy() is not None


def py_spy() -> str | None:
    local = Path(sys.prefix) / "bin" / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def record(pid: int, seconds: float, out: Path) -> asyncio.subprocess.Process:
    """Start recording `pid` for `seconds` into `out` (collapsed stacks); await .wait() after."""
    exe = py_spy()
    if exe is None:
        raise RuntimeError("py-spy is not installed: uv pip install py-spy")
    out.parent.mkdir(parents=True, exist_ok=True)
    return await asyncio.create_subprocess_exec(
        exe,
        "record",
        "--format",
        "raw",
        "--rate",
        "200",
        "--nonblocking",
        "--duration",
        str(max(1, round(seconds))),
        "--pid",
        str(pid),
        "--output",
        str(out),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _group(path: str) -> str:
    parts = path.replace("\\", "/").split("/")
    for needle, label in _GROUPS:
        if needle in parts or any(p.startswith(needle + ".") for p in parts[-1:]):
            return label
    return "other (stdlib, ...)"


def summary(out: Path, *, top: int = 12) -> str:
    """Self time by library, then the functions with the most inclusive time in our code."""
    if not out.exists():
        return f"(no profile at {out})"
    by_group: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f]
        total += count
        if not frames:
            continue
        leaf = _FRAME.match(frames[-1])
        by_group[_group(leaf.group("path") if leaf else frames[-1])] += count
        seen: set[str] = set()
        for frame in frames:
            m = _FRAME.match(frame)
            if m is None:
                continue
            path = m.group("path")
            if not any(k in path for k in ("job_api", "messaging", "servicekit", "_floor_app")):
                continue
            name = f"{m.group('func')} ({Path(path).name})"
            if name not in seen:
                seen.add(name)
                inclusive[name] += count
    if total == 0:
        return f"(empty profile at {out})"
    lines = [f"profile {out.name}: {total} samples; self time by library:"]
    for label, count in by_group.most_common():
        lines.append(f"  {100 * count / total:5.1f}%  {label}")
    lines.append("  inclusive time of the service's and libs' own functions (top):")
    for name, count in inclusive.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}%  {name}")
    return "\n".join(lines)
