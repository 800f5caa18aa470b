"""A job nobody could take says so (`no_worker`, with the command that starts a worker) instead
of waiting silently; one whose workers are all busy says that (`waiting.reason: all_busy`); and a
job only goes to a worker of its own type and provider. Presence comes from the worker registry
(enrolled workers' heartbeats)."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from job_api_testing import eventually, job_body, served_app, user_headers

from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL
from job_api.adapters.workers import WorkerRepository
from job_api.config import Settings
from job_api.domain.worker import Worker
from job_api.entrypoints import housekeeping

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


async def _job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_no_worker_until_one_for_the_route_appears(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    # A worker for another provider and another job type does not count.
    await make_worker("local-embed", provider=GPUProvider.LOCAL, job_types=(JobType.EMBEDDING,))
    await make_worker("colab-lora", provider=GPUProvider.COLAB, job_types=(JobType.LLM_LORA,))
    created = await client.post(JOBS, json=job_body(gpu_provider="colab"), headers=user_headers())
    job_id = created.json()["data"]["id"]

    async def waiting_for_worker() -> dict[str, Any] | None:
        job = await _job(client, job_id)
        return job if job["phase"] == "no_worker" else None

    job = await eventually(waiting_for_worker)
    assert job["status"] == "pending"
    # A phase, not a failure: failure_class stays null until an attempt fails.
    assert job["failure_class"] is None

    # Once the route's last reading says nobody is there, a new job starts out saying so.
    second = await client.post(JOBS, json=job_body(gpu_provider="colab"), headers=user_headers())
    assert second.json()["data"]["phase"] == "no_worker"

    worker = await make_worker(
        "colab-embed", provider=GPUProvider.COLAB, job_types=(JobType.EMBEDDING,)
    )

    async def queued() -> bool:
        jobs = [await _job(client, job_id), await _job(client, second.json()["data"]["id"])]
        return all(j["phase"] == "queued" and j["failure_class"] is None for j in jobs)

    await eventually(queued)
    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == job_id
    reply = await worker.claim(offer)
    assert reply.granted

    history = await client.get(
        f"{JOBS}/{job_id}/events", params={"kind": "status"}, headers=user_headers()
    )
    rows = [(row["data"]["reason"], row["data"]["phase"]) for row in history.json()["data"]]
    # Created straight into `no_worker` (the monitor had already looked) or moved there later;
    # either way it said so until the worker came, then was claimed.
    cut = [reason for reason, _ in rows].index("worker_available")
    assert rows[cut - 1][1] == "no_worker", rows
    assert rows[cut][1] == "queued", rows
    assert rows[-1][0] == "claimed", rows


async def test_a_route_whose_worker_is_busy_training_is_not_shown_as_without_worker(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    """A worker that trains consumes nothing (its queue has no consumer then); the job it runs,
    with a live lease, shows the route is served: the next job waits as `queued`."""
    worker = await make_worker("busy", provider=GPUProvider.KAGGLE, job_types=(JobType.EMBEDDING,))
    first = await client.post(JOBS, json=job_body(gpu_provider="kaggle"), headers=user_headers())
    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == first.json()["data"]["id"]
    assert (await worker.claim(offer)).granted
    # Training: it consumes nothing, and its heartbeats say it is busy with that job.
    await worker.pause_offers()
    worker.set_state("busy", offer.job_id)

    second = await client.post(JOBS, json=job_body(gpu_provider="kaggle"), headers=user_headers())
    second_id = second.json()["data"]["id"]
    for _ in range(10):  # a few presence readings (JOB_API_PRESENCE_INTERVAL is 0.2 s in tests)
        await asyncio.sleep(0.2)
        job = await _job(client, second_id)
        assert job["phase"] == "queued", job


async def test_a_busy_worker_serves_every_job_type_it_claimed_with_and_no_other(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    """The one worker of a box trains an embedding job; it also takes classifier jobs, so a
    pending classifier job waits as `queued`; nobody takes LoRA jobs there: `no_worker`."""
    worker = await make_worker(
        "one-box", provider=GPUProvider.RUNPOD, job_types=(JobType.EMBEDDING, JobType.CLASSIFIER)
    )
    first = await client.post(JOBS, json=job_body(gpu_provider="runpod"), headers=user_headers())
    offer = await worker.next_offer(timeout=10)
    assert str(offer.job_id) == first.json()["data"]["id"]
    assert (await worker.claim(offer)).granted
    # Training: no consumer on any of its queues; its heartbeats say it is busy.
    await worker.pause_offers()
    worker.set_state("busy", offer.job_id)

    classifier = await client.post(
        JOBS,
        json=job_body(gpu_provider="runpod", job_type="classifier", base_model="xlm-roberta-base"),
        headers=user_headers(),
    )
    lora = await client.post(
        JOBS,
        json=job_body(
            gpu_provider="runpod", job_type="llm_lora", base_model="mistralai/Mistral-7B-v0.1"
        ),
        headers=user_headers(),
    )
    lora_id = lora.json()["data"]["id"]

    async def lora_without_worker() -> bool:
        return (await _job(client, lora_id))["phase"] == "no_worker"

    await eventually(lora_without_worker)
    for _ in range(5):
        await asyncio.sleep(0.2)
        job = await _job(client, classifier.json()["data"]["id"])
        assert job["phase"] == "queued", job


async def test_a_waiting_job_tells_nobody_from_all_busy_and_names_the_command(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    created = await client.post(JOBS, json=job_body(gpu_provider="runpod"), headers=user_headers())
    job_id = created.json()["data"]["id"]

    async def waiting(reason: str) -> dict[str, Any] | None:
        job = await _job(client, job_id)
        notice = job["waiting"]
        return job if notice is not None and notice["reason"] == reason else None

    nobody = (await eventually(lambda: waiting("no_worker")))["waiting"]
    assert "No worker that takes embedding jobs is online" in nobody["message"]
    assert nobody["command"].startswith("FTD_WORKER_TOKEN=<worker token> ftd-worker run")
    assert "--provider runpod --job-type embedding" in nobody["command"]

    worker = await make_worker("busy-box", provider=GPUProvider.RUNPOD)
    await worker.pause_offers()
    worker.set_state("busy")
    busy = (await eventually(lambda: waiting("all_busy")))["waiting"]
    assert "are busy" in busy["message"]

    worker.set_state("idle")
    await eventually(lambda: waiting("queued"))
    # Listing jobs carries the same notice; a job that is not pending has none.
    listed = await client.get(JOBS, headers=user_headers())
    assert listed.json()["data"][0]["waiting"]["reason"] == "queued"


async def test_a_presence_reading_that_began_before_a_claim_cannot_say_nobody(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading reads the worker registry first, then the pending jobs. A worker that arrives,
    claims and starts training in between is in neither (no heartbeat read yet, no pending job
    left): the claim itself says the group is served, so the reading cannot mark its jobs
    `no_worker`."""
    # One reading at start-up (no worker yet), then only the ones this test runs.
    async with served_app(settings_factory(presence_interval=3600)) as (client, app):
        state = app.state.service
        original = WorkerRepository.seen_since

        async def nobody(self: WorkerRepository, cutoff: Any) -> list[Worker]:
            return []

        monkeypatch.setattr(WorkerRepository, "seen_since", nobody)
        await housekeeping.presence_step(state)()
        created = await client.post(
            JOBS, json=job_body(gpu_provider="kaggle"), headers=user_headers()
        )
        job_id = created.json()["data"]["id"]
        assert created.json()["data"]["phase"] == "no_worker"

        async def nobody_then_claim(self: WorkerRepository, cutoff: Any) -> list[Worker]:
            # The registry read sees nobody; a claim for the group is granted meanwhile.
            state.worker_claimed(SHARED_POOL, [JobType.EMBEDDING], GPUProvider.KAGGLE)
            return []

        monkeypatch.setattr(WorkerRepository, "seen_since", nobody_then_claim)
        await housekeeping.presence_step(state)()
        assert (await _job(client, job_id))["phase"] == "queued"

        # A later reading that sees nobody, and no claim since it began, says so again.
        monkeypatch.setattr(WorkerRepository, "seen_since", nobody)
        await housekeeping.presence_step(state)()
        assert (await _job(client, job_id))["phase"] == "no_worker"
        monkeypatch.setattr(WorkerRepository, "seen_since", original)
