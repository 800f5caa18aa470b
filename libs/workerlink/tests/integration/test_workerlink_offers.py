"""A worker that goes idle takes an offer that waits already, and hands none back.

It used to consume every work queue of its job types at once (prefetch 1 each), take the first
offer that arrived and hand the others back. On a quorum queue a message handed back counts as a
delivery against the queue's limit (x-delivery-limit): with offers waiting in two queues, an offer
that lost that race a few times was dead-lettered though nobody had failed it, and its job waited
pending until job-api's redispatch (30 minutes by default).
"""

import os
import secrets
import uuid

import pytest

from contracts.enums import GPUProvider, JobType
from contracts.envelope import Envelope
from contracts.routing import DELIVERY_LIMIT, SHARED_POOL, BrokerNames
from messaging.broker import Broker
from messaging.topology import declare_core, declare_queue, delete_topology, work_queue_specs
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

pytestmark = pytest.mark.integration

AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
TYPES = (JobType.EMBEDDING, JobType.CLASSIFIER)


async def test_offers_waiting_in_several_queues_are_taken_without_handing_one_back() -> None:
    names = BrokerNames(prefix=f"wlo{uuid.uuid4().hex[:8]}.")
    admin = Broker(AMQP_URL, names, client_name="offers-test-admin")
    await admin.connect()
    token = f"ftdw_{uuid.uuid4().hex}_{secrets.token_urlsafe(24)}"
    link = BrokerLink(
        AMQP_URL,
        names,
        identity=WorkerIdentity.of(token, SHARED_POOL),
        provider=GPUProvider.LOCAL,
        job_types=TYPES,
        heartbeat_interval=60,
    )
    queues = {names.work_queue(t, GPUProvider.LOCAL) for t in TYPES}
    specs = [s for s in work_queue_specs(names) if s.name in queues]
    assert len(specs) == len(TYPES)
    try:
        channel = await admin.channel()
        await declare_core(channel, names, worker_exchange=True)
        for spec in specs:
            await declare_queue(channel, names, spec)
        # More offers per queue than the delivery limit: each idle turn of the old worker handed
        # one offer of the other queue back.
        offers = DELIVERY_LIMIT + 1
        for job_type in TYPES:
            for _ in range(offers):
                job_id = uuid.uuid4()
                envelope = Envelope(
                    type="job.created",
                    source="job-api",
                    subject=str(job_id),
                    data={"job_id": str(job_id), "job_type": job_type.value},
                )
                await admin.publish_raw(
                    envelope.model_dump_json().encode(),
                    routing_key=f"job.created.{job_type.value}.{GPUProvider.LOCAL.value}",
                    message_id=str(envelope.id),
                    event_type="job.created",
                )
        await link.connect()
        taken: list[tuple[JobType, int]] = []
        for _ in range(offers * len(TYPES)):
            await link.resume_offers()
            try:
                offer = await link.next_offer(timeout=30)
            except TimeoutError:
                dead = await channel.declare_queue(names.dead_letter_queue, passive=True)
                count = dead.declaration_result.message_count
                pytest.fail(f"after {taken}, no offer came: {count} were dead-lettered")
            await link.pause_offers()
            headers = offer.message.headers or {}
            taken.append((offer.job_type, int(str(headers.get("x-delivery-count") or 0))))
            await offer.message.ack()
        assert [count for _, count in taken] == [0] * len(taken), taken
        assert sorted(t for t, _ in taken) == sorted([*TYPES] * offers)
        for name in (*queues, names.dead_letter_queue):
            declared = await channel.declare_queue(name, passive=True)
            assert declared.declaration_result.message_count == 0, name
    finally:
        await link.close()
        channel = await admin.channel()
        await delete_topology(channel, names, sorted(queues))
        await admin.close()
