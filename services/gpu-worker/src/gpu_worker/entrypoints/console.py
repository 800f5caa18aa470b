"""What a person watching the worker sees: one rich progress bar per job, with its metrics.

When stdout is not a terminal (a log file, a notebook cell without a live display) the bar is
replaced by a `job.progress` log line per report.
"""

from typing import Any

import structlog
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from contracts.rpc import JobSpec
from contracts.worker_reports import Progress as ProgressState
from gpu_worker.domain.outcome import Outcome

log = structlog.get_logger(__name__)


def _metrics_text(state: ProgressState) -> str:
    parts = []
    if state.step is not None:
        total = f"/{state.total_steps}" if state.total_steps else ""
        parts.append(f"step {state.step}{total}")
    if state.epoch is not None:
        parts.append(f"epoch {state.epoch:.2f}")
    if state.loss is not None:
        parts.append(f"loss {state.loss:.4f}")
    for name, value in list(state.metrics.items())[:4]:
        parts.append(f"{name} {value:.4g}")
    return "  ".join(parts)


class RichDisplay:
    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[phase]}"),
            TextColumn("{task.fields[metrics]}"),
            console=self._console,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> "RichDisplay":
        self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.stop()

    def start_job(self, spec: JobSpec) -> None:
        description = f"{spec.job_type} {str(spec.job_id)[:8]} #{spec.attempt}"
        self._tasks[str(spec.job_id)] = self._progress.add_task(
            description, total=100, phase="claimed", metrics=spec.base_model
        )

    def update(self, job_id: str, state: ProgressState) -> None:
        task = self._tasks.get(job_id)
        if task is not None:
            self._progress.update(
                task, completed=state.progress, phase=str(state.phase), metrics=_metrics_text(state)
            )

    def end_job(self, job_id: str, outcome: Outcome, message: str) -> None:
        task = self._tasks.pop(job_id, None)
        if task is not None:
            self._progress.update(task, phase=str(outcome))
            self._progress.stop_task(task)
        style = "green" if outcome is Outcome.COMPLETED else "yellow"
        self._console.print(f"[{style}]job {job_id}: {outcome}[/] {message}", highlight=False)


class LogDisplay:
    """No terminal: the same information as log lines."""

    def start_job(self, spec: JobSpec) -> None:
        pass

    def update(self, job_id: str, state: ProgressState) -> None:
        log.info(
            "job.progress",
            job_id=job_id,
            progress=round(state.progress, 1),
            phase=str(state.phase),
            detail=_metrics_text(state),
        )

    def end_job(self, job_id: str, outcome: Outcome, message: str) -> None:
        pass
