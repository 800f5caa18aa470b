"""`ftd jobs watch`: a live progress bar (step, loss, ETA) fed by the job's event stream."""

import datetime as dt
from typing import Any

from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ftd.cli._common import EXIT_CANCELLED, EXIT_ERROR, console, print_json_line
from ftd.client import Job
from ftd.models import JobEvent, JobInfo, JobSnapshot, JobStatus

EXIT_BY_STATUS = {
    JobStatus.COMPLETED: 0,
    JobStatus.FAILED: EXIT_ERROR,
    JobStatus.CANCELLED: EXIT_CANCELLED,
}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-:--:--"
    return str(dt.timedelta(seconds=round(seconds)))


def _loss(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


class LiveBar:
    """A rich progress bar kept up to date from snapshots and events."""

    def __init__(self, progress: Progress, job: JobInfo) -> None:
        self.progress = progress
        self.task: TaskID = progress.add_task(
            self._label(job.status, job.phase), total=100, steps="step -", loss="-", eta=_eta(None)
        )
        self.loss: Any = job.metrics.get("loss")
        self.show(job.step, job.total_steps, job.progress, job.eta_seconds)

    @staticmethod
    def _label(status: str, phase: str | None) -> str:
        return f"{status} ({phase})" if phase and phase != status else status

    def show(
        self, step: int | None, total: int | None, percent: float | None, eta: float | None
    ) -> None:
        loss, eta_text = _loss(self.loss), _eta(eta)
        if total:
            steps, done, of = f"step {step or 0}/{total}", float(step or 0), float(total)
        else:
            steps, done, of = "step -", float(percent or 0), 100.0
        self.progress.update(
            self.task, completed=done, total=of, steps=steps, loss=loss, eta=eta_text
        )

    def apply(self, item: JobEvent | JobSnapshot) -> None:
        if isinstance(item, JobSnapshot):
            job = item.job
            self.progress.update(self.task, description=self._label(job.status, job.phase))
            self.show(job.step, job.total_steps, job.progress, job.eta_seconds)
            return
        data = item.data
        if item.kind == "status":
            status, phase = str(data.get("to_status")), data.get("phase")
            self.progress.update(self.task, description=self._label(status, phase))
            note = f"[dim]{item.created_at:%H:%M:%S}[/] {status}"
            if data.get("reason"):
                note += f" [dim]({data['reason']})[/]"
            if data.get("error"):
                note += f": [red]{data['error']}[/]"
            self.progress.console.print(note)
        elif item.kind == "progress":
            if data.get("loss") is not None:
                self.loss = data["loss"]
            if data.get("phase"):
                self.progress.update(self.task, description=self._label("running", data["phase"]))
            self.show(
                data.get("step"),
                data.get("total_steps"),
                data.get("progress"),
                data.get("eta_seconds"),
            )
            for line in data.get("log_lines") or []:
                self.progress.console.print(f"[dim]{line}[/]", highlight=False)


def watch_job(job: Job, *, as_json: bool, timeout: float | None = None) -> int:
    """Follow `job` until it ends; the exit status its outcome calls for."""
    if as_json:
        for item in job.events(timeout=timeout):
            print_json_line(item)
        final = job.refresh()
        print_json_line(final)
        return EXIT_BY_STATUS.get(final.status, EXIT_ERROR)
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[steps]}"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("ETA {task.fields[eta]}"),
        TimeElapsedColumn(),
    )
    console.print(f"Watching job [bold]{job.id}[/] ({job.job_type}, {job.output_model})")
    with Progress(*columns, console=console, refresh_per_second=8) as progress:
        bar = LiveBar(progress, job)
        for item in job.events(timeout=timeout):
            bar.apply(item)
    final = job.refresh()
    style = {"completed": "green", "failed": "red"}.get(final.status, "yellow")
    console.print(f"Job [bold]{final.id}[/] [{style}]{final.status}[/].")
    if final.error:
        console.print(f"[red]{final.error}[/] ({final.failure_class})")
    if final.status is JobStatus.COMPLETED and final.output_revision:
        console.print(f"Model: {final.output_model}@{final.output_revision}")
    return EXIT_BY_STATUS.get(final.status, EXIT_ERROR)
