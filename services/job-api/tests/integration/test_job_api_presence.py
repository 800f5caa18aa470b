"""A job whose queue nobody consumes says so (`no_worker`) instead of waiting silently, and a
job only goes to a worker of its own type and provider."""

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from job_api_testing import eventually, job_body, served_app, user_headers

from contracts.enums import GPUProvider, JobType
from job_api.config import Settings
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
    reply = await worker.take(offer)
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
    assert (await worker.take(offer)).granted
    await worker.close()  # no consumer on the queue from now on; the lease still runs

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
    assert (await worker.take(offer)).granted
    await worker.close()  # training: no consumer on any of its queues; the lease still runs

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


async def test_a_presence_reading_that_began_before_a_claim_cannot_say_nobody(
    settings_factory: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reading asks the broker first, then the database. A worker that arrives, claims and
    starts training in between is in neither half (no consumer then, no running job yet): the
    claim itself says the route is served, so the reading cannot mark its jobs `no_worker`."""
    route = (JobType.EMBEDDING, GPUProvider.KAGGLE)
    # One reading at start-up (no worker yet), then only the ones this test runs.
    async with served_app(settings_factory(presence_interval=3600)) as (client, app):
        state = app.state.job_api

        async def nobody(channel: Any, queue: str) -> int:
            return 0

        monkeypatch.setattr(housekeeping, "consumer_count", nobody)
        await housekeeping.presence_step(state, state.broker)()
        created = await client.post(
            JOBS, json=job_body(gpu_provider="kaggle"), headers=user_headers()
        )
        job_id = created.json()["data"]["id"]
        assert created.json()["data"]["phase"] == "no_worker"

        async def count_then_claim(channel: Any, queue: str) -> int:
            # The broker half sees nobody; a claim on the route is granted meanwhile.
            state.worker_claimed([JobType.EMBEDDING], GPUProvider.KAGGLE)
            return 0

        monkeypatch.setattr(housekeeping, "consumer_count", count_then_claim)
        await housekeeping.presence_step(state, state.broker)()
        assert state.presence[route] is True
        assert (await _job(client, job_id))["phase"] == "queued"

        # A later reading that sees nobody, and no claim since it began, says so again.
        monkeypatch.setattr(housekeeping, "consumer_count", nobody)
        await housekeeping.presence_step(state, state.broker)()
        assert state.presence[route] is False
        assert (await _job(client, job_id))["phase"] == "no_worker"
