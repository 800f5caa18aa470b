"""One correlation id from the HTTP request that creates a job, through the offer, the claim and
the job spec, to the worker's reports and the events job-api publishes on handling them."""

from typing import Any

import aio_pika
import pytest
from job_api_testing import AMQP_URL, eventually, job_body, user_headers

from contracts.enums import ModelStore
from contracts.events import Envelope, ModelPushed, Trace, within
from contracts.routing import BrokerNames

pytestmark = pytest.mark.integration


async def test_one_id_follows_a_job_from_the_request_to_its_completion(
    client: Any, make_worker: Any, broker_prefix: str
) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        events = BrokerNames(broker_prefix).events_exchange
        for key in ("job.status_changed", "model.completed"):
            await queue.bind(events, routing_key=key)
        seen: list[Envelope] = []

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            seen.append(Envelope.model_validate_json(message.body))

        await queue.consume(keep, no_ack=True)

        worker = await make_worker()
        headers = {**user_headers(), "X-Request-Id": "req-follow-me"}
        created = await client.post("/api/finetune/jobs", json=job_body(), headers=headers)
        assert created.status_code == 201, created.text
        assert created.headers["x-request-id"] == "req-follow-me"

        # The offer (job.created) carries the request id; the claim carries it to job-api,
        # whose job spec carries it to the worker.
        offer = await worker.next_offer(timeout=10)
        assert offer.trace is not None
        assert offer.trace.correlation_id == "req-follow-me"
        reply = await worker.claim(offer)
        assert reply.granted
        spec = reply.job
        assert spec is not None
        assert spec.correlation_id == "req-follow-me"
        assert spec.causation_id is not None

        # The worker reports within the attempt's trace (as gpu-worker's attempt does).
        with within(Trace(spec.correlation_id, spec.causation_id)):
            pushed = ModelPushed(
                **worker.report_fields(spec),
                repo_id="alice/custom-embedding",
                revision="abc123",
                store=ModelStore.HUB,
                uri="hf://alice/custom-embedding@abc123",
            )
            report = Envelope.wrap(pushed, source=worker.source)
            assert worker.reports is not None
            await worker.reports.publish(report, pushed.routing_key(), timeout=10)

        async def completed() -> Envelope | None:
            return next((e for e in seen if e.type == "model.completed"), None)

        done = await eventually(completed)
        # job-api's event on handling the report: the same chain, caused by the report.
        assert done.correlation_id == "req-follow-me"
        assert done.causation_id == str(report.id)
        statuses = {e.data["to_status"]: e for e in seen if e.type == "job.status_changed"}
        assert statuses["pending"].correlation_id == "req-follow-me"
        assert statuses["pending"].causation_id == "req-follow-me"
        assert statuses["running"].correlation_id == "req-follow-me"
        assert statuses["running"].causation_id == spec.causation_id
    finally:
        await connection.close()
