"""A job goes the whole way over the broker: created, offered, claimed, progress, completed."""

import asyncio
from typing import Any

import pytest
from job_api_testing import WORKER_HEADERS, eventually, job_body, user_headers

from contracts.enums import ModelStore
from contracts.events import JobProgress, ModelPushed

pytestmark = pytest.mark.integration


async def test_job_lifecycle_over_the_broker(client: Any, make_worker: Any) -> None:
    worker = await make_worker()
    created = await client.post("/api/finetune/jobs", json=job_body(), headers=user_headers())
    assert created.status_code == 201, created.text
    job_id = created.json()["data"]["id"]

    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert reply.granted
    assert reply.job is not None
    assert reply.job.attempt == 1
    mine = worker.report_fields(reply.job)

    await worker.publish(
        JobProgress(
            **mine,
            progress=40,
            step=4,
            total_steps=10,
            loss=0.5,
            log_lines=["step 4"],
        )
    )

    async def progressed() -> bool:
        r = await client.get(f"/api/finetune/jobs/{job_id}", headers=user_headers())
        return bool(r.json()["data"]["progress"] == 40)

    await eventually(progressed)
    await worker.publish(
        ModelPushed(
            **mine,
            repo_id="alice/custom-embedding",
            revision="abc123",
            store=ModelStore.HUB,
            uri="hf://alice/custom-embedding@abc123",
        )
    )

    async def completed() -> dict[str, Any] | None:
        r = await client.get(f"/api/finetune/jobs/{job_id}", headers=user_headers())
        data: dict[str, Any] = r.json()["data"]
        return data if data["status"] == "completed" else None

    job = await eventually(completed)
    assert job["progress"] == 100
    assert job["output_revision"] == "abc123"
    assert job["metrics"]["loss"] == 0.5
    pending = await client.get("/api/finetune/jobs/pending", headers=WORKER_HEADERS)
    assert pending.json()["data"] == []
    await asyncio.sleep(0)
