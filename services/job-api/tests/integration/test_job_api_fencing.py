"""Fencing on every path (invariant 2): each reproduction of issue 5, section 2, as a test.

HTTP: the claim is a compare-and-set, an update without `attempt` applies only for the holder, the
data URL is minted at claim only, a late heartbeat renews the lease, and a 409 says why.
Broker: a report needs the attempt's claim secret; job-api publishes the one model.completed.
Watchdog: an unexpired lease is never requeued.
"""

import hashlib
import uuid
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import (
    WORKER_HEADERS,
    bearer,
    enroll_over_http,
    eventually,
    job_body,
    user_headers,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import ModelStore
from contracts.events import Envelope, JobCancelRequested, JobProgress, ModelPushed, payload_of
from contracts.rpc import JobSpec
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


async def create_job(client: httpx.AsyncClient, **overrides: Any) -> str:
    response = await client.post(JOBS, json=job_body(**overrides), headers=user_headers())
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def get_job(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# Enrolled workers' tokens by the names tests use (per client: each test has its own app).
TOKENS: dict[tuple[int, str], tuple[str, str]] = {}


async def credential(client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    """(worker id, token) of the shared-pool worker `name`, enrolled on first use."""
    key = (id(client), name)
    if key not in TOKENS:
        enrolled = await enroll_over_http(client, name)
        TOKENS[key] = (enrolled["worker"]["id"].replace("-", ""), enrolled["token"])
    return TOKENS[key]


async def patch(
    client: httpx.AsyncClient, job_id: str, worker: str | None = None, **body: Any
) -> httpx.Response:
    """A worker update as the enrolled worker `worker`, or (None) with the shared key."""
    headers = dict(WORKER_HEADERS)
    if worker is not None:
        headers = bearer((await credential(client, worker))[1])
    return await client.patch(f"{JOBS}/{job_id}", json=body, headers=headers)


async def worker_id(client: httpx.AsyncClient, name: str) -> str:
    return (await credential(client, name))[0]


def refused(response: httpx.Response, code: str) -> str:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


async def lapse(db: AsyncEngine, job_id: str) -> None:
    async with db.begin() as conn:
        await conn.execute(
            sa.text("UPDATE jobs.jobs SET lease_expires_at = now() - interval '1 s' WHERE id = :i"),
            {"i": uuid.UUID(job_id)},
        )


async def wait_status(client: httpx.AsyncClient, job_id: str, status: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        job = await get_job(client, job_id)
        return job if job["status"] == status else None

    found: dict[str, Any] = await eventually(check)
    return found


# ------------------------------------------------------------------------------------ HTTP path


async def test_two_workers_claiming_one_job_over_http_get_one_grant(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client)

    first = await patch(client, job_id, "w-a", status="running")
    second = await patch(client, job_id, "w-b", status="running")

    w_a = await worker_id(client, "w-a")
    assert first.status_code == 200, first.text
    assert first.json()["data"]["data_url"] == "https://data.example.com/train.csv"
    assert first.json()["data"]["worker_id"] == w_a
    message = refused(second, "already_claimed")
    assert message == (
        f"Job {job_id} is running attempt 1 for worker {w_a}; only a pending job can be claimed."
    )
    job = await get_job(client, job_id)
    assert (job["attempt"], job["worker_id"]) == (1, w_a)
    # The holder repeating its claim (a lost response) keeps attempt 1; no second data ticket.
    again = await patch(client, job_id, "w-a", status="running", progress=5)
    assert again.status_code == 200, again.text
    assert (again.json()["data"]["attempt"], again.json()["data"]["data_url"]) == (1, None)
    # Only the holder's updates apply.
    refused(await patch(client, job_id, "w-b", progress=50), "stale_attempt")
    refused(await patch(client, job_id, "w-b", progress=50, attempt=1), "stale_attempt")
    refused(await patch(client, job_id, "w-b", status="completed"), "stale_attempt")
    assert (await get_job(client, job_id))["progress"] == 5


async def test_a_job_claimed_over_the_broker_cannot_be_claimed_or_reported_over_http(
    client: httpx.AsyncClient, make_worker: Any
) -> None:
    worker = await make_worker("w-broker")
    job_id = await create_job(client)
    offer = await worker.next_offer(timeout=10)
    assert (await worker.claim(offer)).granted

    # Another credential, and the shared key: neither holds the job.
    for who in (None, "w-http"):
        refused(await patch(client, job_id, who, status="running"), "already_claimed")
        message = refused(await patch(client, job_id, who, progress=10, attempt=1), "stale_attempt")
        assert "claimed over the broker" in message
        refused(await patch(client, job_id, who, status="completed"), "stale_attempt")
    # The same credential over HTTP: still not without the claim secret the broker gave it.
    same = {"Authorization": f"Bearer {worker.identity.credential.token}"}
    response = await client.patch(f"{JOBS}/{job_id}", json={"status": "completed"}, headers=same)
    assert "claimed over the broker" in refused(response, "stale_attempt")
    job = await get_job(client, job_id)
    assert (job["status"], job["attempt"], job["worker_id"]) == ("running", 1, worker.worker_id)


async def test_a_zombie_http_worker_cannot_complete_the_next_attempt(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    """After the lease moved to attempt 2, the old holder's `completed` without `attempt` is
    refused with the reason; attempt 2 completes the job."""
    job_id = await create_job(client)
    assert (await patch(client, job_id, "w-old", status="running")).status_code == 200
    await lapse(db, job_id)
    await wait_status(client, job_id, "pending")
    claimed = await patch(client, job_id, "w-new", status="running")
    assert claimed.json()["data"]["attempt"] == 2

    zombie = await patch(client, job_id, "w-old", status="completed", output_revision="zombie")

    message = refused(zombie, "stale_attempt")
    w_new, w_old = await worker_id(client, "w-new"), await worker_id(client, "w-old")
    assert message == f"Job {job_id} is held by worker {w_new} (attempt 2), not by {w_old}."
    job = await get_job(client, job_id)
    assert (job["status"], job["attempt"], job["output_revision"]) == ("running", 2, None)
    done = await patch(client, job_id, "w-new", status="completed", output_revision="rev-2")
    assert done.status_code == 200, done.text
    assert done.json()["data"]["output_revision"] == "rev-2"


async def test_the_briefs_sequence_works_for_the_worker_that_claimed(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client)

    started = await patch(client, job_id, status="running", progress=50)
    done = await patch(client, job_id, status="completed", progress=100)

    assert started.status_code == 200, started.text
    assert started.json()["data"]["data_url"] is not None
    assert done.status_code == 200, done.text
    assert (done.json()["data"]["status"], done.json()["data"]["progress"]) == ("completed", 100)


async def test_409_messages_say_the_real_reason(client: httpx.AsyncClient) -> None:
    job_id = await create_job(client)
    pending = refused(await patch(client, job_id, progress=10), "stale_attempt")
    assert pending == f"Job {job_id} is pending: no attempt holds it; claim it before reporting."

    assert (await patch(client, job_id, status="running")).status_code == 200
    wrong = refused(await patch(client, job_id, progress=10, attempt=3), "stale_attempt")
    assert wrong == f"Job {job_id} is held by attempt 1; attempt 3 no longer holds it."

    assert (await patch(client, job_id, status="completed")).status_code == 200
    for body in ({"progress": 10, "attempt": 1}, {"progress": 10}, {"status": "failed"}):
        late = refused(await patch(client, job_id, **body), "stale_attempt")
        assert late == f"Job {job_id} is completed; attempt 1 no longer holds it."
    ended = refused(await patch(client, job_id, status="running"), "illegal_transition")
    assert ended == "A completed job cannot become running."


async def test_a_late_http_heartbeat_renews_the_lease_and_keeps_the_higher_progress(
    client: httpx.AsyncClient,
) -> None:
    job_id = await create_job(client)
    first = await patch(client, job_id, "w1", status="running", progress=60)
    lease_before = first.json()["data"]["lease_expires_at"]

    behind = await patch(client, job_id, "w1", progress=40)

    assert behind.status_code == 200, behind.text
    data = behind.json()["data"]
    assert data["progress"] == 60
    assert data["lease_expires_at"] > lease_before


# ---------------------------------------------------------------------------------- broker path


def pushed(worker: BrokerLink, spec: JobSpec, revision: str, **override: Any) -> ModelPushed:
    fields: dict[str, Any] = {**worker.report_fields(spec), **override}
    return ModelPushed(
        **fields,
        repo_id="alice/custom-embedding",
        revision=revision,
        store=ModelStore.LOCAL,
        uri=f"file:///models/alice/custom-embedding/{revision}",
        baseline_metrics={"eval_loss": 0.9},
        metrics={"eval_loss": 0.2},
    )


async def test_a_report_without_the_claim_secret_has_no_effect_and_one_model_completed_is_published(
    client: httpx.AsyncClient, make_worker: Any, db: AsyncEngine
) -> None:
    """Any worker credential could name the job and its attempt; without the secret granted with
    the claim nothing happens. Subscribers of finetune.events get one model.completed, job-api's,
    with the pushed model's location."""
    holder = await make_worker("w-holder")
    mallory = await make_worker("w-mallory")
    job_id = await create_job(client)
    offer = await holder.next_offer(timeout=10)
    reply = await holder.claim(offer)
    assert reply.job is not None
    spec = reply.job
    channel = await holder.connection.channel()
    tap = await channel.declare_queue(exclusive=True, auto_delete=True)
    await tap.bind(holder.names.events_exchange, routing_key="model.completed")
    stops = await channel.declare_queue(exclusive=True, auto_delete=True)
    await stops.bind(holder.names.events_exchange, routing_key=f"job.cancel_requested.{job_id}")

    forged = {"worker_id": "w-holder", "claim_secret": "guessed-secret"}
    await mallory.publish(JobProgress(**{**mallory.report_fields(spec), **forged}, progress=99))
    await mallory.publish(pushed(mallory, spec, "forged", **forged))
    await holder.publish(JobProgress(**holder.report_fields(spec), progress=50))
    job = await eventually(lambda: _progress_is(client, job_id, 50))
    assert job["status"] == "running"
    assert job["output_revision"] is None

    await holder.publish(pushed(holder, spec, "rev-1"))
    job = await wait_status(client, job_id, "completed")
    assert job["output_revision"] == "rev-1"

    async def drained() -> bool:
        async with db.connect() as conn:
            left = await conn.execute(sa.text("SELECT count(*) FROM jobs.outbox"))
            return left.scalar_one() == 0

    await eventually(drained)
    messages = []
    while (message := await tap.get(no_ack=True, fail=False)) is not None:
        messages.append(Envelope.model_validate_json(message.body))
    notices = []
    while (message := await stops.get(no_ack=True, fail=False)) is not None:
        notices.append(payload_of(Envelope.model_validate_json(message.body)))
    await channel.close()
    # The forger alone is told to stop: the notice names its (wrong) secret's hash, not the holder's.
    # (one per consumer batch that held a forged report)
    assert notices
    for notice in notices:
        assert isinstance(notice, JobCancelRequested)
        assert notice.attempt == spec.attempt
        assert notice.claim_secret_sha256 == hashlib.sha256(b"guessed-secret").hexdigest()
        assert notice.claim_secret_sha256 != hashlib.sha256(spec.claim_secret.encode()).hexdigest()
    [completed] = messages
    assert completed.source == "job-api"
    assert completed.data["revision"] == "rev-1"
    assert completed.data["uri"] == "file:///models/alice/custom-embedding/rev-1"
    assert completed.data["store"] == "local"
    assert completed.data["baseline_metrics"] == {"eval_loss": 0.9}
    assert completed.sequence is not None
    assert "claim_secret" not in completed.data
    # The secret is stored only as its hash.
    async with db.connect() as conn:
        stored = (
            await conn.execute(
                sa.text("SELECT claim_secret_hash FROM jobs.jobs WHERE id = :i"),
                {"i": uuid.UUID(job_id)},
            )
        ).scalar_one()
        dumped = await conn.execute(sa.text("SELECT data::text FROM jobs.job_events"))
        history = " ".join(r[0] for r in dumped)
    assert stored != spec.claim_secret
    assert spec.claim_secret not in history


async def _progress_is(client: httpx.AsyncClient, job_id: str, value: float) -> Any:
    job = await get_job(client, job_id)
    return job if job["progress"] == value else None


# ------------------------------------------------------------------------------------- watchdog


async def test_the_watchdog_requeues_an_expired_lease_and_never_an_unexpired_one(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    lapsed = await create_job(client)
    alive = await create_job(client, output_model="alice/alive")
    for job_id in (lapsed, alive):
        assert (await patch(client, job_id, "w1", status="running")).status_code == 200
    await lapse(db, lapsed)

    await wait_status(client, lapsed, "pending")

    # The watchdog ran (it requeued the other one) and left the unexpired lease alone.
    job = await get_job(client, alive)
    w1 = await worker_id(client, "w1")
    assert (job["status"], job["attempt"], job["worker_id"]) == ("running", 1, w1)
    events = await client.get(
        f"{JOBS}/{alive}/events", params={"kind": "status"}, headers=user_headers()
    )
    reasons = [r["data"]["reason"] for r in events.json()["data"]]
    assert "lease_expired" not in reasons
