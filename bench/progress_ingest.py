"""Progress ingest: how fast job-api's events consumer applies `job.progress` from a backlog.

Design (why in-process): the number to measure is the throughput of job-api's real consumer
(messaging.consumer.InboxConsumer + job_api's apply_worker_events, one transaction per batch with
its inbox rows) draining a backlog, with nothing else in the timed window. So:

1. The real app is built with job_api.entrypoints.app.create_app and its real lifespan (engine,
   broker, topology, outbox relay, watchdog, presence monitor, LISTEN hub), in this process,
   with `run_consumers=False`; the claim RPC server is started by hand (make_rpc_server) so jobs
   can be claimed.
2. K jobs are created with POST /api/finetune/jobs (ASGI transport, a real JWT) and claimed by a
   WorkerClient over broker RPC: they are `running`, attempt 1.
3. M progress events (attempt 1, progress strictly increasing per job, round-robin over the jobs,
   realistic fields: step, epoch, loss, metrics, one log line) are published by the worker through
   job-api's own path (confirmed, mandatory publish to the events exchange -> job-api's quorum
   events queue) BEFORE the consumer runs, and the queue depth is checked to be M.
4. Timed window: from starting make_consumer(state, broker).run() (the same factory the lifespan
   uses) until the consumer has applied M events. The relay, watchdog, presence and LISTEN tasks
   keep running alongside, as in production.
5. Verified afterwards: M `progress` rows in jobs.job_events, M inbox rows, every job still running
   on attempt 1 with its progress equal to the last value sent, nothing left in the queue.

Baseline (same run, same broker): bare aio-pika consumption of M messages with the same bodies from
a quorum queue (same arguments) with the same prefetch as InboxConsumer (2 x max_batch), acking
each message, no database. It is measured before and after job-api; the faster of the two is used
for the ratio (the stricter comparison on a noisy machine).

Targets: job-api >= 0.8 x raw and >= 5,000 events/s.

  uv run python bench/progress_ingest.py [--quick] [--events M] [--jobs K]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

import aio_pika
import asyncpg
import httpx
from _common import (
    AMQP_URL,
    Stack,
    bench_stack,
    job_body,
    machine_note,
    quiet_logging,
    table,
    verdict,
)
from aio_pika.abc import AbstractIncomingMessage
from asgi_lifespan import LifespanManager

from contracts.enums import GPUProvider, JobType
from contracts.events import Envelope, JobProgress
from contracts.routing import JOB_API
from job_api.entrypoints.app import create_app
from job_api.entrypoints.deps import AppState
from job_api.entrypoints.workers import make_consumer, make_rpc_server
from messaging.broker import Broker
from messaging.topology import declare_core, quorum_arguments
from messaging.worker import WorkerClient
from servicekit.db import asyncpg_dsn

PUBLISH_CHUNK = 500
PREFETCH = 1000  # InboxConsumer's default: 2 x max_batch (500); checked against the real one


def progress_plan(job_ids: list[uuid.UUID], m: int) -> list[JobProgress]:
    """M events, round-robin over the jobs, progress strictly increasing per job (ending < 100)."""
    k = len(job_ids)
    per_job = [m // k + (1 if i < m % k else 0) for i in range(k)]
    seen = [0] * k
    events: list[JobProgress] = []
    for n in range(m):
        i = n % k
        seen[i] += 1
        step = seen[i]
        total = per_job[i]
        events.append(
            JobProgress(
                job_id=job_ids[i],
                attempt=1,
                worker_id="bench-w1",
                progress=round(99.0 * step / total, 6),
                step=step,
                total_steps=total,
                epoch=round(3.0 * step / total, 4),
                loss=round(2.0 / (1 + step), 6),
                metrics={"learning_rate": 2e-5, "grad_norm": 1.0 + (step % 7) / 10},
                log_lines=[f"step {step}/{total} loss {2.0 / (1 + step):.4f}"],
                eta_seconds=float(total - step),
            )
        )
    return events


async def queue_depth(channel: aio_pika.abc.AbstractChannel, name: str) -> int:
    # The raw AMQP channel: aio-pika's robust channel hands back its cached queue object, whose
    # declaration result is the first one.
    underlay = await channel.get_underlay_channel()
    declared = await underlay.queue_declare(name, passive=True)
    return int(declared.message_count or 0)


async def wait_depth(channel: aio_pika.abc.AbstractChannel, name: str, want: int) -> None:
    deadline = time.monotonic() + 60
    while (depth := await queue_depth(channel, name)) != want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"queue {name} holds {depth} messages, expected {want}")
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- raw baseline


async def measure_raw(stack: Stack, bodies: list[bytes], prefetch: int, label: str) -> float:
    names = stack.names
    queue_name = f"{stack.prefix}bench.raw.progress.{label}"
    stack.extra_queues.append(queue_name)
    conn = await aio_pika.connect_robust(
        AMQP_URL, client_properties={"connection_name": "raw-ingest"}
    )
    try:
        setup = await conn.channel()
        await declare_core(setup, names)
        await setup.declare_queue(queue_name, durable=True, arguments=quorum_arguments(names))
        pub = await conn.channel(publisher_confirms=True)
        for start in range(0, len(bodies), PUBLISH_CHUNK):
            await asyncio.gather(
                *(
                    pub.default_exchange.publish(
                        aio_pika.Message(
                            body=b,
                            message_id=uuid.uuid4().hex,
                            type="job.progress",
                            content_type="application/cloudevents+json",
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                        ),
                        queue_name,
                    )
                    for b in bodies[start : start + PUBLISH_CHUNK]
                )
            )
        await wait_depth(setup, queue_name, len(bodies))

        consume = await conn.channel()
        await consume.set_qos(prefetch_count=prefetch)
        done = asyncio.get_running_loop().create_future()
        count = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == len(bodies) and not done.done():
                done.set_result(time.perf_counter())

        queue = await consume.get_queue(queue_name)
        t0 = time.perf_counter()
        await queue.consume(on_message)
        t1 = await asyncio.wait_for(done, 300)
        await consume.close()
        await setup.queue_delete(queue_name, if_unused=False, if_empty=False)
        return len(bodies) / (t1 - t0)
    finally:
        await conn.close()


# --------------------------------------------------------------------------- job-api


async def create_running_jobs(
    client: httpx.AsyncClient, worker: WorkerClient, k: int
) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for i in range(k):
        response = await client.post("/api/finetune/jobs", json=job_body(i))
        if response.status_code != 201:
            raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
        ids.append(uuid.UUID(response.json()["data"]["id"]))
    claimed: set[uuid.UUID] = set()
    while len(claimed) < k:
        offer = await worker.next_offer(timeout=30)
        reply = await worker.take(offer)
        if not reply.granted or reply.job is None or reply.job.attempt != 1:
            raise RuntimeError(f"claim of {offer.job_id} refused: {reply}")
        claimed.add(offer.job_id)
    if claimed != set(ids):
        raise RuntimeError("claimed jobs differ from created jobs")
    return ids


async def verify(stack: Stack, events: list[JobProgress]) -> dict[str, Any]:
    last: dict[uuid.UUID, float] = {}
    for e in events:
        last[e.job_id] = e.progress
    conn = await asyncpg.connect(asyncpg_dsn(stack.database_url))
    try:
        progress_rows = await conn.fetchval(
            "SELECT count(*) FROM jobs.job_events WHERE kind = 'progress'"
        )
        inbox_rows = await conn.fetchval("SELECT count(*) FROM jobs.inbox")
        jobs = await conn.fetch("SELECT id, status, attempt, progress FROM jobs.jobs")
    finally:
        await conn.close()
    bad = [
        (str(j["id"]), j["status"], j["attempt"], j["progress"], last.get(j["id"]))
        for j in jobs
        if j["status"] != "running" or j["attempt"] != 1 or j["progress"] != last.get(j["id"])
    ]
    return {
        "progress_rows": progress_rows,
        "inbox_rows": inbox_rows,
        "bad_jobs": bad,
        "jobs": len(jobs),
    }


async def measure_job_api(
    stack: Stack, k: int, m: int
) -> tuple[float, list[bytes], dict[str, Any], int, dict[str, int]]:
    """Returns events/s, the published bodies (for the baseline), the verification, the
    consumer's prefetch and its counters."""
    settings = stack.settings(run_consumers=False, lease_seconds=3600)
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60) as manager:
        state: AppState = app.state.job_api
        assert state.broker is not None
        broker = state.broker
        rpc = asyncio.create_task(make_rpc_server(state, broker).run(), name="rpc")
        wbroker = Broker(AMQP_URL, stack.names, client_name="bench-worker")
        await wbroker.connect()
        worker = WorkerClient(
            wbroker, worker_id="bench-w1", provider=GPUProvider.LOCAL, job_types=[JobType.EMBEDDING]
        )
        await worker.start()
        consumer_task: asyncio.Task[None] | None = None
        try:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench", headers=stack.user_headers()
            ) as client:
                job_ids = await create_running_jobs(client, worker, k)
            events = progress_plan(job_ids, m)
            envelopes = [Envelope.wrap(e, source=worker.source) for e in events]
            bodies = [env.model_dump_json().encode() for env in envelopes]
            for start in range(0, m, PUBLISH_CHUNK):
                await asyncio.gather(
                    *(
                        wbroker.publish_raw(
                            body,
                            routing_key=e.routing_key(),
                            message_id=str(env.id),
                            event_type=env.type,
                        )
                        for body, e, env in zip(
                            bodies[start : start + PUBLISH_CHUNK],
                            events[start : start + PUBLISH_CHUNK],
                            envelopes[start : start + PUBLISH_CHUNK],
                            strict=True,
                        )
                    )
                )
            events_queue = broker.names.service_queue(JOB_API)
            probe = await wbroker.channel()
            await wait_depth(probe, events_queue, m)

            consumer = make_consumer(state, broker)
            prefetch = consumer._max_batch * 2  # what InboxConsumer.run asks the broker for
            if prefetch != PREFETCH:
                raise RuntimeError(
                    f"InboxConsumer prefetch is {prefetch}, the baseline uses {PREFETCH}"
                )
            t0 = time.perf_counter()
            consumer_task = asyncio.create_task(consumer.run(), name="consumer")
            deadline = time.monotonic() + 600
            while consumer.applied + consumer.duplicates + consumer.dead_lettered < m:
                if consumer_task.done():
                    consumer_task.result()
                    raise RuntimeError("consumer stopped")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only {consumer.applied} of {m} applied in time")
                await asyncio.sleep(0.002)
            t1 = time.perf_counter()
            counters = {
                "applied": consumer.applied,
                "duplicates": consumer.duplicates,
                "dead_lettered": consumer.dead_lettered,
            }
            await asyncio.sleep(0.3)  # let the last acks reach the broker
            left = await queue_depth(probe, events_queue)
            await probe.close()
        finally:
            for task in (consumer_task, rpc):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await worker.close()
            await wbroker.close()
    result = await verify(stack, events)
    result["left_in_queue"] = left
    return m / (t1 - t0), bodies, result, prefetch, counters


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events instead of 20,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    m = args.events or (5000 if args.quick else 20000)
    k = args.jobs
    quiet_logging()
    print(f"progress ingest: {m:,} job.progress events over {k} running jobs; {machine_note()}")
    # Same plan and body sizes as the job-api run, with stand-in job ids (not known yet).
    stand_in = [
        Envelope.wrap(e, source="gpu-worker/bench-w1").model_dump_json().encode()
        for e in progress_plan([uuid.uuid4() for _ in range(k)], m)
    ]
    async with bench_stack("ingest") as stack:
        raw_before = await measure_raw(stack, stand_in, PREFETCH, "a")
        rate, bodies, check, prefetch, counters = await measure_job_api(stack, k, m)
        raw_after = await measure_raw(stack, bodies, prefetch, "b")
    raw = max(raw_before, raw_after)
    avg_body = sum(len(b) for b in bodies) / len(bodies)
    print()
    print(
        table(
            ["consumer", "events", "prefetch", "events/s"],
            [
                ["raw aio-pika, ack each (run 1)", m, prefetch, raw_before],
                ["raw aio-pika, ack each (run 2)", m, prefetch, raw_after],
                ["job-api InboxConsumer + apply_worker_events", m, prefetch, rate],
            ],
        )
    )
    print(f"(average message body {avg_body:.0f} bytes)")
    ok = (
        check["progress_rows"] == m
        and check["inbox_rows"] == m
        and not check["bad_jobs"]
        and check["left_in_queue"] == 0
        and counters["applied"] == m
    )
    print()
    print(
        f"verification: progress rows {check['progress_rows']:,}/{m:,}, inbox rows "
        f"{check['inbox_rows']:,}, jobs running on attempt 1 with the last progress sent: "
        f"{check['jobs'] - len(check['bad_jobs'])}/{check['jobs']}, left in queue "
        f"{check['left_in_queue']}, consumer counters {counters} -> {'OK' if ok else 'FAILED'}"
    )
    if check["bad_jobs"]:
        print(
            f"  mismatching jobs (id, status, attempt, progress, expected): {check['bad_jobs'][:5]}"
        )
    ratio = rate / raw
    print(f"ratio job-api/raw (best raw run) = {ratio:.2f}x")
    print(f"target >= 0.8x raw        : {verdict(ratio >= 0.8)} ({ratio:.2f}x)")
    print(f"target >= 5,000 events/s  : {verdict(rate >= 5000)} ({rate:,.0f}/s)")
    if not ok:
        raise SystemExit("verification failed: events were lost or misapplied")


if __name__ == "__main__":
    asyncio.run(main())
