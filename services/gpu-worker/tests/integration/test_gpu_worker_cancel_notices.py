"""Which stop notices a running attempt obeys (BrokerLink.watch_cancel, against the real broker):
its own attempt's, any attempt's, and a notice addressed to its own claim secret; not another
attempt's, and not one addressed to another secret (job-api sends those to a worker that reported
on this attempt with a wrong secret: that sender stops, the real holder trains on)."""

import asyncio
import hashlib
import uuid
from typing import Any

import httpx
import pytest
from gpu_worker_harness import AMQP_URL
from job_api_testing import enroll_over_http

from contracts.enums import CancelReason, GPUProvider, JobType
from contracts.events import Envelope, JobCancelRequested
from contracts.routing import SHARED_POOL, BrokerNames
from messaging.broker import Broker
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration


def sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


async def test_a_notice_for_another_secret_or_attempt_is_ignored(
    job_api: httpx.AsyncClient, prefix: str
) -> None:
    # job_api: running, so the topology (the events exchange) exists.
    enrolled = await enroll_over_http(job_api, "w-holder")
    link = BrokerLink(
        AMQP_URL,
        BrokerNames(prefix),
        identity=WorkerIdentity.of(enrolled["token"], SHARED_POOL),
        provider=GPUProvider.LOCAL,
        job_types=(JobType.EMBEDDING,),
    )
    await link.connect()
    publisher = Broker(AMQP_URL, BrokerNames(prefix), client_name="test-job-api")
    await publisher.connect()
    job_id = uuid.uuid4()
    heard: list[JobCancelRequested] = []
    channel = await link.watch_cancel(job_id, 2, heard.append, claim_secret="holder-secret")
    try:

        async def notify(**fields: Any) -> None:
            payload = JobCancelRequested(job_id=job_id, reason=CancelReason.STALE_ATTEMPT, **fields)
            await publisher.publish(Envelope.wrap(payload, source="job-api"), payload.routing_key())

        await notify(attempt=2, claim_secret_sha256=sha("guessed-secret"))
        await notify(attempt=1)
        await notify(attempt=3, claim_secret_sha256=sha("holder-secret"))
        await notify(attempt=2, claim_secret_sha256=sha("holder-secret"))
        await notify(attempt=2)
        await notify(attempt=None)
        for _ in range(100):
            if len(heard) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # anything else in flight arrives too
        assert [(n.attempt, n.claim_secret_sha256) for n in heard] == [
            (2, sha("holder-secret")),
            (2, None),
            (None, None),
        ]
    finally:
        await channel.close()
        await publisher.close()
        await link.close()
