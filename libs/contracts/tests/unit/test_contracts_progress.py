"""A progress report's fields: one type (`Progress`) the worker keeps and job-api applies, and the
`job.progress` event that carries it."""

from dataclasses import fields
from uuid import UUID

from contracts.enums import JobPhase
from contracts.worker_reports import JobProgress, Progress

JOB_ID = UUID("00000000-0000-4000-8000-000000000001")


def _report(progress: Progress, log_lines: list[str] | None = None) -> JobProgress:
    return JobProgress.of(
        progress,
        job_id=JOB_ID,
        attempt=2,
        worker_id="w-1",
        claim_secret="s3cret",
        log_lines=log_lines or [],
    )


def test_every_progress_field_is_a_field_of_job_progress() -> None:
    assert {f.name for f in fields(Progress)} <= set(JobProgress.model_fields)


def test_a_report_carries_the_progress_it_was_made_of() -> None:
    progress = Progress(
        progress=42.5,
        phase=JobPhase.EVALUATING,
        step=17,
        total_steps=40,
        epoch=1.5,
        loss=0.25,
        metrics={"accuracy": 0.9},
        eta_seconds=12.0,
        logs_url="https://wandb.example/run/1",
    )

    report = _report(progress, ["step 17"])

    assert report.report() == progress
    assert (report.job_id, report.attempt, report.worker_id) == (JOB_ID, 2, "w-1")
    assert report.log_lines == ["step 17"]


def test_the_wire_keeps_its_field_order() -> None:
    body = _report(Progress(progress=1.0)).model_dump(mode="json")

    assert list(body) == [
        "job_id",
        "attempt",
        "worker_id",
        "claim_secret",
        "progress",
        "phase",
        "step",
        "total_steps",
        "epoch",
        "loss",
        "metrics",
        "log_lines",
        "eta_seconds",
        "logs_url",
    ]


def test_what_a_report_gives_is_a_copy() -> None:
    report = _report(Progress(progress=3.0, metrics={"f1": 0.5}))

    taken = report.report()
    taken.metrics["f1"] = 0.0

    assert report.metrics == {"f1": 0.5}


def test_copy_does_not_share_metrics() -> None:
    progress = Progress(metrics={"f1": 0.5})

    copied = progress.copy()
    copied.metrics["f1"] = 1.0

    assert progress.metrics == {"f1": 0.5}
