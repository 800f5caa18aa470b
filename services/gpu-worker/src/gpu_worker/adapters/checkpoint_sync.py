"""Copies the checkpoints a trainer writes (`checkpoint-N` folders) to the checkpoint store while
it trains, so an attempt that dies without warning (a preempted spot instance, SIGKILL) still
leaves the next attempt something to resume from.

A folder is copied once it looks finished: it holds `trainer_state.json` (which the Trainer writes
after the weights and optimizer state) and its files did not change between two looks.
"""

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import structlog

from gpu_worker.adapters.threads import run_in_thread

log = structlog.get_logger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _signature(folder: Path) -> tuple[tuple[str, int], ...]:
    return tuple(
        sorted(
            (str(p.relative_to(folder)), p.stat().st_size) for p in folder.rglob("*") if p.is_file()
        )
    )


def newest_finished(directory: Path) -> tuple[int, Path] | None:
    if not directory.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := _CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()
    ]
    return max(found) if found else None


class CheckpointSync:
    def __init__(self, directory: Path, save: Callable[[Path], bool]) -> None:
        self._directory = directory
        self._save = save
        self.last: int | None = None
        self._seen: tuple[int, tuple[tuple[str, int], ...]] | None = None

    def scan(self) -> Path | None:
        """The newest finished checkpoint not copied yet, once it is stable across two scans."""
        try:
            newest = newest_finished(self._directory)
            if newest is None or (self.last is not None and newest[0] <= self.last):
                return None
            step, folder = newest
            seen = (step, _signature(folder))
        except OSError:
            return None  # the trainer is rotating checkpoints under us; look again later
        stable = seen == self._seen
        self._seen = seen
        return folder if stable else None

    def _sync_once(self) -> None:
        folder = self.scan()
        if folder is not None and self._save(folder):
            self.last = int(folder.name.split("-")[1])

    async def run(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await run_in_thread(self._sync_once, name="checkpoint-sync")
