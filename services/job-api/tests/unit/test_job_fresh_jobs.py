"""FreshJobs: what a process remembers of the jobs it just created, for the optimistic claim."""

import time
import uuid
from datetime import UTC, datetime

from contracts.enums import GPUProvider, JobStatus, JobType
from job_api.adapters.fast_path import FreshJob, FreshJobs
from job_api.domain.job import Job


def _job() -> Job:
    now = datetime.now(UTC)
    return Job(
        id=uuid.uuid4(),
        user_id="alice",
        project_id=None,
        job_type=JobType.LLM_LORA,
        base_model="m",
        training_data_url="https://data.example.com/train.jsonl",
        dataset_id=None,
        output_model="alice/m",
        gpu_provider=GPUProvider.LOCAL,
        hyperparameters={"lora_r": 8, "target_modules": ["q_proj", "v_proj"]},
        max_attempts=3,
        created_at=now,
        updated_at=now,
        dispatched_at=now,
    )


def test_an_entry_is_a_detached_copy_and_is_taken_once() -> None:
    fresh = FreshJobs()
    job = _job()
    fresh.remember(FreshJob(job=job, row_version="1234"))
    # The creator's object changes afterwards (or the claim changes the copy): neither sees it.
    job.hyperparameters["target_modules"].append("k_proj")
    job.status = JobStatus.CANCELLED

    taken = fresh.take(job.id)
    assert taken is not None
    assert taken.row_version == "1234"
    assert taken.job.status is JobStatus.PENDING
    assert taken.job.hyperparameters["target_modules"] == ["q_proj", "v_proj"]
    assert fresh.take(job.id) is None
    assert len(fresh) == 0


def test_entries_expire_and_are_bounded() -> None:
    fresh = FreshJobs(size=3, ttl=0.05)
    jobs = [_job() for _ in range(5)]
    for job in jobs:
        fresh.remember(FreshJob(job=job, row_version="1"))
    assert len(fresh) == 3
    assert fresh.take(jobs[0].id) is None, "the oldest went first"
    time.sleep(0.1)
    assert fresh.take(jobs[-1].id) is None, "an entry lives `ttl` seconds"
