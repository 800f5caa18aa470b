"""Workers the suite enrolls on the running stack, driven with the worker's own code: enrolment
through the gateway (POST /api/workers, GET /api/workers/me as gpu-worker asks it) and the broker
through workerlink, dialled as the broker user job-api made for the worker (`ftdw-<id>`)."""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from security_stack import BASE_MODEL, SecurityStack

from contracts.enums import GPUProvider, JobType
from contracts.routing import BrokerNames
from gpu_worker.adapters.enrolment import Enrolment, broker_url, who_am_i
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

TERMINAL = {"completed", "failed", "cancelled"}


@dataclass(frozen=True)
class Enrolled:
    id: str  # as the API shows it (a UUID)
    token: str
    me: Enrolment

    @property
    def hex(self) -> str:
        """The id in tokens, broker user and queue names."""
        return self.me.worker_id

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def amqp_url(self) -> str:
        """The broker as this worker dials it: its own user, its token the password."""
        return broker_url(self.me, self.token, override=None)

    @property
    def names(self) -> BrokerNames:
        return BrokerNames(self.me.broker_prefix)


async def enroll(stack: SecurityStack, name: str, *, owner: str | None = None) -> Enrolled:
    """A shared-pool worker (an operator enrolls it), or `owner`'s private one."""
    headers = stack.headers(owner) if owner is not None else stack.admin_headers()
    pool = "private" if owner is not None else "shared"
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        r = await http.post("/api/workers", json={"name": name, "pool": pool}, headers=headers)
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    token: str = data["token"]
    me = await who_am_i(stack.base_url, token)
    assert me.broker_username == f"ftdw-{me.worker_id}", "job-api made the worker a broker user"
    return Enrolled(id=data["worker"]["id"], token=token, me=me)


@contextlib.asynccontextmanager
async def linked(
    worker: Enrolled,
    *,
    provider: GPUProvider = GPUProvider.COLAB,
    job_types: Sequence[JobType] = tuple(JobType),
) -> AsyncIterator[BrokerLink]:
    link = BrokerLink(
        worker.amqp_url,
        worker.names,
        identity=WorkerIdentity.of(worker.token, worker.me.pool),
        provider=provider,
        job_types=list(job_types),
    )
    await link.connect()
    try:
        yield link
    finally:
        await link.close(flush_timeout=5)


def job_request(
    output_model: str,
    training_data_url: str,
    *,
    job_type: str = "embedding",
    provider: str = "colab",
    pool: str = "shared",
    hyperparameters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """POST /api/finetune/jobs's body. Provider `colab` by default: no worker of the stack serves
    it, so the job waits for the worker a test plays; `local` goes to the stack's CPU worker."""
    body: dict[str, Any] = {
        "job_type": job_type,
        "base_model": BASE_MODEL,
        "training_data_url": training_data_url,
        "output_model": output_model,
        "gpu_provider": provider,
        "worker_pool": pool,
    }
    if hyperparameters is not None:
        body["hyperparameters"] = hyperparameters
    return body


async def create_job(http: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    """A dataset uploaded a moment ago may not have reached job-api yet: 409 dataset_not_ready with
    Retry-After, sent again after the delay, as a client should."""
    deadline = time.monotonic() + 30
    while True:
        r = await http.post("/api/finetune/jobs", json=body)
        if r.status_code != 409 or time.monotonic() > deadline:
            break
        if r.json()["error"]["code"] != "dataset_not_ready":
            break
        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()["data"]
    return job


async def poll(
    check: Callable[[], Awaitable[Any]], *, timeout: float, what: str, interval: float = 0.5
) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


async def ended(http: httpx.AsyncClient, job_id: str, *, timeout: float = 180) -> dict[str, Any]:
    """The job once it has reached a terminal status."""

    async def check() -> dict[str, Any] | None:
        job: dict[str, Any] = (await http.get(f"/api/finetune/jobs/{job_id}")).json()["data"]
        return job if job["status"] in TERMINAL else None

    found: dict[str, Any] = await poll(check, timeout=timeout, what=f"job {job_id} to end")
    return found


async def all_events(http: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = (
            await http.get(
                f"/api/finetune/jobs/{job_id}/events", params={"limit": 200, "cursor": cursor}
            )
        ).json()
        events += page["data"]
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return events
