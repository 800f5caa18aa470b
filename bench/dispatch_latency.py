"""Dispatch latency: from `POST /api/finetune/jobs` to a worker holding a granted claim.

job-api runs as `job-api serve` (uvicorn, subprocess) with relay, consumers, RPC server and
watchdog. A WorkerClient (provider local, job type embedding) runs in this process as its own
task: next_offer -> take (claim RPC, then ack). Jobs are sent one at a time:

  t0  just before the POST (httpx.AsyncClient, keep-alive, a real JWT)
  t1  when the worker task holds the granted ClaimReply

So one sample covers: HTTP + the job/outbox transaction, the relay's NOTIFY wake-up, the confirmed
publish to the quorum work queue, delivery to the worker, the claim request on the RPC queue,
job-api's claim transaction, and the reply.

Baseline (same broker, same run, same number of iterations): the bare AMQP chain with aio-pika and
no database: a publisher sends a persistent message with confirms (mandatory, via a topic
exchange) to a quorum queue; a consumer (prefetch 1) receives it, sends a request with reply_to to
a quorum RPC queue over a confirming channel; a server consumes it and replies through the default
exchange; the consumer gets the reply and acks the original. t0 before the publish, t1 at the
reply. Each party has its own connection, like the real processes.

Targets (from the issue): p50(job-api) <= 2 x p50(raw) and p50(job-api) < 10 ms.

  uv run python bench/dispatch_latency.py [--quick] [--jobs N] [--warmup N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from typing import Any

import aio_pika
import httpx
from _common import (
    AMQP_URL,
    LatencySummary,
    Stack,
    bench_stack,
    job_api_server,
    job_body,
    machine_note,
    quiet_logging,
    table,
    verdict,
)
from aio_pika.abc import AbstractIncomingMessage

from contracts.enums import GPUProvider, JobType
from messaging.broker import Broker
from messaging.topology import declare_core, quorum_arguments
from messaging.worker import WorkerClient

# --------------------------------------------------------------------------- job-api


async def measure_job_api(
    stack: Stack, *, n: int, warmup: int
) -> tuple[list[float], dict[str, list[float]]]:
    """Returns the end-to-end samples and their breakdown (POST answered, offer received)."""
    server = job_api_server(stack)
    await server.start()
    broker = Broker(AMQP_URL, stack.names, client_name="bench-worker")
    worker: WorkerClient | None = None
    worker_task: asyncio.Task[None] | None = None
    try:
        await broker.connect()
        worker = WorkerClient(
            broker, worker_id="bench-w1", provider=GPUProvider.LOCAL, job_types=[JobType.EMBEDDING]
        )
        await worker.start()
        claimed: dict[uuid.UUID, asyncio.Future[tuple[float, float]]] = {}
        loop = asyncio.get_running_loop()

        def slot(job_id: uuid.UUID) -> asyncio.Future[tuple[float, float]]:
            return claimed.setdefault(job_id, loop.create_future())

        async def work(w: WorkerClient) -> None:
            while True:
                offer = await w.next_offer()
                t_offer = time.perf_counter()
                reply = await w.take(offer)
                t1 = time.perf_counter()
                if not reply.granted or reply.job is None or reply.job.attempt != 1:
                    slot(offer.job_id).set_exception(RuntimeError(f"claim refused: {reply}"))
                else:
                    slot(offer.job_id).set_result((t_offer, t1))

        worker_task = asyncio.create_task(work(worker))
        samples: list[float] = []
        parts: dict[str, list[float]] = {"post": [], "offer": [], "claim": []}
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=stack.user_headers(), timeout=30
        ) as client:
            for i in range(warmup + n):
                t0 = time.perf_counter()
                response = await client.post("/api/finetune/jobs", json=job_body(i))
                if response.status_code != 201:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
                t_post = time.perf_counter()
                job_id = uuid.UUID(response.json()["data"]["id"])
                t_offer, t1 = await asyncio.wait_for(slot(job_id), 15)
                claimed.pop(job_id)
                if i >= warmup:
                    samples.append(t1 - t0)
                    parts["post"].append(t_post - t0)
                    parts["offer"].append(t_offer - t0)
                    parts["claim"].append(t1 - t_offer)
        if worker_task.done():
            worker_task.result()
        return samples, parts
    finally:
        if worker_task is not None:
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
        if worker is not None:
            await worker.close()
        await broker.close()
        await server.stop()


# --------------------------------------------------------------------------- raw aio-pika baseline

# Bodies of the size the real chain carries (job.created envelope, ClaimJob, ClaimReply).
_OFFER = json.dumps({"job": "x" * 560}).encode()
_REQUEST = json.dumps({"claim": "x" * 240}).encode()
_REPLY = json.dumps({"reply": "x" * 640}).encode()


async def measure_raw(stack: Stack, *, n: int, warmup: int) -> list[float]:
    names = stack.names
    work_q = f"{stack.prefix}bench.raw.work"
    rpc_q = f"{stack.prefix}bench.raw.rpc"
    stack.extra_queues += [work_q, rpc_q]
    pub_conn = await aio_pika.connect_robust(
        AMQP_URL, client_properties={"connection_name": "raw-pub"}
    )
    wrk_conn = await aio_pika.connect_robust(
        AMQP_URL, client_properties={"connection_name": "raw-worker"}
    )
    srv_conn = await aio_pika.connect_robust(
        AMQP_URL, client_properties={"connection_name": "raw-server"}
    )
    try:
        setup = await pub_conn.channel()
        await declare_core(setup, names)
        q = await setup.declare_queue(work_q, durable=True, arguments=quorum_arguments(names))
        await q.bind(names.events_exchange, routing_key="bench.raw.work")
        await setup.declare_queue(rpc_q, durable=True, arguments=quorum_arguments(names))
        await setup.close()

        # Publisher: confirmed, persistent, mandatory publish to the topic exchange (as the relay).
        pub_ch = await pub_conn.channel(publisher_confirms=True)
        events = await pub_ch.get_exchange(names.events_exchange, ensure=False)

        # Server: prefetch 64, no confirms for replies (as RpcServer).
        srv_ch = await srv_conn.channel(publisher_confirms=False)
        await srv_ch.set_qos(prefetch_count=64)

        async def serve(message: AbstractIncomingMessage) -> None:
            json.loads(message.body)
            if message.reply_to:
                await srv_ch.default_exchange.publish(
                    aio_pika.Message(
                        body=_REPLY,
                        correlation_id=message.correlation_id,
                        content_type="application/json",
                    ),
                    routing_key=message.reply_to,
                )
            await message.ack()

        await (await srv_ch.get_queue(rpc_q)).consume(serve)

        # Consumer ("worker"): prefetch 1 on the work queue; a confirming channel with an exclusive
        # reply queue for the request (as RpcClient).
        rpc_ch = await wrk_conn.channel(publisher_confirms=True)
        reply_q = await rpc_ch.declare_queue(exclusive=True, auto_delete=True)
        pending: dict[str, asyncio.Future[bytes]] = {}

        async def on_reply(message: AbstractIncomingMessage) -> None:
            fut = pending.pop(message.correlation_id or "", None)
            if fut is not None and not fut.done():
                fut.set_result(message.body)

        await reply_q.consume(on_reply, no_ack=True)
        work_ch = await wrk_conn.channel(publisher_confirms=True)
        await work_ch.set_qos(prefetch_count=1)
        done: dict[str, asyncio.Future[float]] = {}
        loop = asyncio.get_running_loop()

        async def on_offer(message: AbstractIncomingMessage) -> None:
            json.loads(message.body)
            cid = uuid.uuid4().hex
            fut: asyncio.Future[bytes] = loop.create_future()
            pending[cid] = fut
            await rpc_ch.default_exchange.publish(
                aio_pika.Message(
                    body=_REQUEST,
                    correlation_id=cid,
                    reply_to=reply_q.name,
                    content_type="application/json",
                    expiration=10,
                ),
                routing_key=rpc_q,
            )
            json.loads(await asyncio.wait_for(fut, 10))
            t1 = time.perf_counter()
            await message.ack()
            done[message.message_id or ""].set_result(t1)

        await (await work_ch.get_queue(work_q)).consume(on_offer)

        samples: list[float] = []
        for i in range(warmup + n):
            mid = uuid.uuid4().hex
            fut = done[mid] = loop.create_future()
            t0 = time.perf_counter()
            await events.publish(
                aio_pika.Message(
                    body=_OFFER,
                    message_id=mid,
                    content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                ),
                "bench.raw.work",
                mandatory=True,
            )
            t1 = await asyncio.wait_for(fut, 15)
            del done[mid]
            if i >= warmup:
                samples.append(t1 - t0)
        return samples
    finally:
        for conn in (pub_conn, wrk_conn, srv_conn):
            await conn.close()


# --------------------------------------------------------------------------- report


def report(job_api: LatencySummary, raw: LatencySummary, parts: dict[str, LatencySummary]) -> None:
    def row(name: str, s: LatencySummary) -> list[Any]:
        return [name, s.n, s.p50, s.p90, s.p99, s.mean, s.max]

    rows: list[list[Any]] = [
        row("raw aio-pika publish->consume->rpc->reply", raw),
        row("job-api POST -> granted claim", job_api),
        row("  of which: t0 -> POST answered", parts["post"]),
        row("  of which: t0 -> offer at worker", parts["offer"]),
        row("  of which: offer -> claim granted", parts["claim"]),
    ]
    print(table(["chain (ms)", "n", "p50", "p90", "p99", "mean", "max"], rows))
    ratio = job_api.p50 / raw.p50
    print()
    print(f"ratio p50(job-api)/p50(raw) = {ratio:.2f}x")
    print(f"target p50 within 2x of raw : {verdict(ratio <= 2.0)} ({ratio:.2f}x)")
    print(f"target p50 under 10 ms      : {verdict(job_api.p50 < 10.0)} ({job_api.p50:.2f} ms)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 jobs instead of 300")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    n = args.jobs or (50 if args.quick else 300)
    quiet_logging()
    print(f"dispatch latency: {n} sequential jobs after {args.warmup} warm-up; {machine_note()}")
    async with bench_stack("dispatch") as stack:
        raw = LatencySummary.of(await measure_raw(stack, n=n, warmup=args.warmup))
        samples, parts = await measure_job_api(stack, n=n, warmup=args.warmup)
    job_api = LatencySummary.of(samples)
    print()
    report(job_api, raw, {k: LatencySummary.of(v) for k, v in parts.items()})


if __name__ == "__main__":
    asyncio.run(main())
