"""Progress ingest: how fast job-api applies a backlog of `job.progress` reports, against a raw
aio-pika consumer that only acknowledges each message (same broker, same run).

job-api is driven from the outside only (`job-api serve`, its HTTP API, a BrokerLink):

1. `job-api serve` starts (lease 1 h, so nothing expires); K jobs are created with POST and
   claimed by a BrokerLink over the claim RPC (attempt 1, each with its claim secret where the
   protocol has one).
2. job-api is stopped (graceful). The worker publishes M progress reports (attempt 1, progress
   and step strictly increasing per job, round-robin over the jobs, realistic fields: step,
   epoch, loss, metrics, one log line) with BrokerLink.publish, i.e. wherever the protocol
   routes worker reports; they wait in job-api's durable queue. The queue is found by its depth
   (rabbitmqctl), so its name is not hard-wired here.
3. `job-api serve` starts again. The queue depth is polled every few ms: the timed window opens
   at the last poll that still saw M messages and closes when every job, read back over HTTP,
   shows the step of its last report (first the job of the very last report, then all K).
4. Verified afterwards: M progress rows in the jobs' histories (GET /jobs/{id}/events?kind=
   progress), every job running on attempt 1 with its last step, and, once job-api is stopped
   again, every queue of the vhost empty (nothing unacknowledged, nothing dead-lettered).

Baseline: bare aio-pika consumption of M messages with bodies of the same size from a quorum queue
with the same arguments, prefetch 1,000 (InboxConsumer's default: 2 x its batch of 500), acking
each message, no database. Measured before and after job-api; the faster run is used.

Target (issue 5): job-api >= 1.0 x the raw ack-each rate, nothing lost. A miss is printed; the
script exits non-zero only if reports were lost or misapplied (or it could not run).

  uv run python bench/progress_ingest.py [--quick] [--events M] [--jobs K]
                                         [--profile FILE] [--server-env KEY=VALUE ...]

`--profile FILE` records job-api with py-spy from the moment it starts draining the backlog.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import _profile
import aio_pika
import httpx
from _common import (
    Phases,
    Server,
    Stack,
    add_server_env_option,
    bench_stack,
    bench_worker,
    job_api_server,
    job_body,
    machine_note,
    queue_depths,
    quiet_logging,
    server_env,
    table,
    verdict,
)
from aio_pika.abc import AbstractIncomingMessage

from contracts.events import Envelope, JobProgress
from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.topology import declare_core, quorum_arguments
from workerlink.link import BrokerLink

PUBLISH_CHUNK = 500
PREFETCH = 1000  # InboxConsumer's default: 2 x max_batch (500)


def progress_plan(
    jobs: dict[uuid.UUID, str | None], m: int
) -> tuple[list[JobProgress], dict[uuid.UUID, int]]:
    """M reports round-robin over the jobs (job id -> claim secret or None); progress and step
    strictly increasing per job. Returns them and each job's last step."""
    ids = list(jobs)
    k = len(ids)
    per_job = [m // k + (1 if i < m % k else 0) for i in range(k)]
    seen = [0] * k
    secret_field = "claim_secret" in JobProgress.model_fields
    events: list[JobProgress] = []
    for n in range(m):
        i = n % k
        seen[i] += 1
        step = seen[i]
        total = per_job[i]
        fields: dict[str, Any] = {
            "job_id": ids[i],
            "attempt": 1,
            "worker_id": "bench-w1",
            "progress": round(99.0 * step / total, 6),
            "step": step,
            "total_steps": total,
            "epoch": round(3.0 * step / total, 4),
            "loss": round(2.0 / (1 + step), 6),
            "metrics": {"learning_rate": 2e-5, "grad_norm": 1.0 + (step % 7) / 10},
            "log_lines": [f"step {step}/{total} loss {2.0 / (1 + step):.4f}"],
            "eta_seconds": float(total - step),
        }
        if secret_field:
            fields["claim_secret"] = jobs[ids[i]] or ""
        events.append(JobProgress(**fields))
    return events, {ids[i]: per_job[i] for i in range(k)}


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


async def measure_raw(stack: Stack, bodies: list[bytes], label: str) -> tuple[float, float]:
    """(events/s, CPU seconds of this process during the window)."""
    names = BrokerNames("raw.")
    queue_name = f"raw.progress.{label}"
    conn = await aio_pika.connect_robust(
        stack.amqp_url, client_properties={"connection_name": "raw-ingest"}
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
        await consume.set_qos(prefetch_count=PREFETCH)
        done = asyncio.get_running_loop().create_future()
        count = 0

        async def on_message(message: AbstractIncomingMessage) -> None:
            nonlocal count
            await message.ack()
            count += 1
            if count == len(bodies) and not done.done():
                done.set_result(time.perf_counter())

        queue = await consume.get_queue(queue_name)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await queue.consume(on_message)
        t1 = await asyncio.wait_for(done, 300)
        cpu = time.process_time() - cpu0
        await consume.close()
        await setup.queue_delete(queue_name, if_unused=False, if_empty=False)
        return len(bodies) / (t1 - t0), cpu
    finally:
        await conn.close()


# --------------------------------------------------------------------------- job-api


async def create_running_jobs(
    server: Server, stack: Stack, worker: BrokerLink, k: int
) -> dict[uuid.UUID, str | None]:
    """K jobs created over HTTP and claimed over the broker: job id -> claim secret (or None)."""
    ids: list[uuid.UUID] = []
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=stack.user_headers(), timeout=30
    ) as client:
        for i in range(k):
            response = await client.post("/api/finetune/jobs", json=job_body(i))
            if response.status_code != 201:
                raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
            ids.append(uuid.UUID(response.json()["data"]["id"]))
    claimed: dict[uuid.UUID, str | None] = {}
    while len(claimed) < k:
        offer = await worker.next_offer(timeout=30)
        reply = await worker.claim(offer)
        if not reply.granted or reply.job is None or reply.job.attempt != 1:
            raise RuntimeError(f"claim of {offer.job_id} refused: {reply}")
        claimed[offer.job_id] = getattr(reply.job, "claim_secret", None)
    if set(claimed) != set(ids):
        raise RuntimeError("claimed jobs differ from created jobs")
    return claimed


async def job_steps(client: httpx.AsyncClient, ids: list[uuid.UUID]) -> dict[uuid.UUID, Any]:
    out: dict[uuid.UUID, Any] = {}
    for job_id in ids:
        response = await client.get(f"/api/finetune/jobs/{job_id}")
        response.raise_for_status()
        out[job_id] = response.json()["data"]
    return out


async def count_progress_rows(client: httpx.AsyncClient, job_id: uuid.UUID) -> int:
    count, cursor = 0, None
    while True:
        params: dict[str, Any] = {"kind": "progress", "limit": 200}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(f"/api/finetune/jobs/{job_id}/events", params=params)
        response.raise_for_status()
        page = response.json()
        count += len(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


async def exact_depths(broker: Broker, vhost: str) -> dict[str, int]:
    """Every queue of the vhost (names from rabbitmqctl) with its exact depth (passive declare;
    rabbitmqctl's counts may lag). Queues that vanished meanwhile, and other connections'
    exclusive ones (a passive declare of those closes the channel), are left out."""
    names = await asyncio.to_thread(queue_depths, vhost)
    out: dict[str, int] = {}
    channel = await broker.channel()
    try:
        for name in names:
            try:
                out[name] = await queue_depth(channel, name)
            except aio_pika.exceptions.ChannelClosed:
                channel = await broker.channel()
    finally:
        await channel.close()
    return out


async def measure_job_api(
    stack: Stack,
    k: int,
    m: int,
    extra_env: dict[str, str],
    phases: Phases,
    profile: Path | None = None,
) -> tuple[float, list[bytes], dict[str, Any]]:
    """Returns events/s, the bodies (for the baseline) and the verification."""
    env = {"JOB_API_LEASE_SECONDS": "3600", **extra_env}
    first = job_api_server(stack, **env)
    await first.start()
    wbroker = Broker(stack.amqp_url, stack.names, client_name="bench-probe")
    await wbroker.connect()
    worker = await bench_worker(stack, first)
    second: Server | None = None
    try:
        try:
            phases.mark("start job-api")
            jobs = await create_running_jobs(first, stack, worker, k)
            phases.mark("create + claim jobs")
        finally:
            await first.stop()
        phases.mark("stop job-api")
        events, last_step = progress_plan(jobs, m)
        bodies = [Envelope.wrap(e, source=worker.source).model_dump_json().encode() for e in events]
        for start in range(0, m, PUBLISH_CHUNK):
            await asyncio.gather(
                *(worker.publish(e) for e in events[start : start + PUBLISH_CHUNK])
            )
        # The queue holding the reports: the one that filled up (rabbitmqctl's counts may lag;
        # the exact depth is then awaited with a passive declare).
        probe = await wbroker.channel()
        deadline = time.monotonic() + 30
        while True:
            depths = await exact_depths(wbroker, stack.vhost)
            reports_queue = max(depths, key=lambda name: depths[name])
            if depths[reports_queue] > 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no queue holds the reports: {depths}")
            await asyncio.sleep(0.2)
        await wait_depth(probe, reports_queue, m)
        phases.mark("publish backlog")

        # Timed window: from the last poll that saw the whole backlog to every job up to date.
        second = job_api_server(stack, **env)
        starting = asyncio.create_task(second.start())
        t_full = time.perf_counter()
        cpu_full = 0.0
        give_up = time.monotonic() + 120
        while (depth := await queue_depth(probe, reports_queue)) == m:
            t_full = time.perf_counter()
            if second.proc is not None:
                cpu_full = second.cpu_seconds()
            if starting.done() and starting.exception() is not None:
                starting.result()
            if time.monotonic() > give_up:
                raise RuntimeError(f"job-api consumed nothing in 120 s:\n{second.log_tail()}")
            await asyncio.sleep(0.002)
        t0 = t_full
        recorder = None
        if profile is not None:
            # About how long the drain takes at ~5,000 events/s.
            recorder = await _profile.record(second.pid, max(1.0, m / 5000), profile)
        while depth > 0:
            await asyncio.sleep(0.002)
            depth = await queue_depth(probe, reports_queue)
        await starting
        phases.mark("restart + drain")
        last_job = events[-1].job_id
        ids = list(jobs)
        async with httpx.AsyncClient(
            base_url=second.base_url, headers=stack.user_headers(), timeout=30
        ) as client:
            deadline = time.monotonic() + 300
            while True:
                response = await client.get(f"/api/finetune/jobs/{last_job}")
                if response.json()["data"]["step"] == last_step[last_job]:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the last report was not applied within 300 s")
                await asyncio.sleep(0.002)
            while True:
                states = await job_steps(client, ids)
                t1 = time.perf_counter()
                cpu = second.cpu_seconds() - cpu_full
                if all(states[j]["step"] == last_step[j] for j in ids):
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            rows = {j: await count_progress_rows(client, j) for j in ids}
        if recorder is not None:
            await recorder.wait()
        phases.mark("verify over HTTP")
        await second.stop()
        second = None
        left = {n: d for n, d in (await exact_depths(wbroker, stack.vhost)).items() if d}
        await probe.close()
    finally:
        await worker.close(flush_timeout=1)
        await wbroker.close()
        if second is not None:
            await second.stop()
    bad = [
        (str(j), s["status"], s["attempt"], s["step"], last_step[j])
        for j, s in states.items()
        if s["status"] != "running" or s["attempt"] != 1 or s["step"] != last_step[j]
    ]
    check = {
        "progress_rows": sum(rows.values()),
        "bad_jobs": bad,
        "jobs": len(states),
        "left": left,
        "queue": reports_queue,
        "cpu": cpu,
    }
    return m / (t1 - t0), bodies, check


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events instead of 20,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output file")
    add_server_env_option(parser)
    args = parser.parse_args()
    if args.profile is not None and not _profile.available():
        raise SystemExit("--profile needs py-spy: uv pip install py-spy")
    m = args.events or (5000 if args.quick else 20000)
    k = args.jobs
    quiet_logging()
    print(f"progress ingest: {m:,} job.progress reports over {k} running jobs; {machine_note()}")
    # Same plan and body sizes as the job-api run, with stand-in job ids (not known yet).
    stand_in, _ = progress_plan({uuid.uuid4(): "x" * 43 for _ in range(k)}, m)
    stand_in_bodies = [
        Envelope.wrap(e, source="gpu-worker/bench-w1").model_dump_json().encode() for e in stand_in
    ]
    phases = Phases()
    async with bench_stack("ingest") as stack:
        phases.mark("set-up")
        raw_before, raw_cpu_before = await measure_raw(stack, stand_in_bodies, "a")
        phases.mark("raw 1")
        rate, bodies, check = await measure_job_api(
            stack, k, m, server_env(args), phases, args.profile
        )
        raw_after, raw_cpu_after = await measure_raw(stack, bodies, "b")
        phases.mark("raw 2")
    phases.mark("clean-up")
    raw = max(raw_before, raw_after)
    avg_body = sum(len(b) for b in bodies) / len(bodies)
    print()
    print(
        table(
            ["consumer", "events", "prefetch", "events/s", "CPU us/event"],
            [
                [
                    "raw aio-pika, ack each (run 1)",
                    m,
                    PREFETCH,
                    raw_before,
                    1e6 * raw_cpu_before / m,
                ],
                ["raw aio-pika, ack each (run 2)", m, PREFETCH, raw_after, 1e6 * raw_cpu_after / m],
                [
                    "job-api (`job-api serve`, restarted on the backlog)",
                    m,
                    "its own",
                    rate,
                    1e6 * check["cpu"] / m,
                ],
            ],
        )
    )
    print(
        "(CPU: the consuming process's user + system time in the window; job-api's includes its "
        "database client work, not PostgreSQL's)"
    )
    print(f"(average message body {avg_body:.0f} bytes; job-api's reports queue: {check['queue']})")
    ok = check["progress_rows"] == m and not check["bad_jobs"] and not check["left"]
    print()
    print(
        f"verification: progress rows {check['progress_rows']:,}/{m:,}, jobs running on attempt 1 "
        f"with the last step sent: {check['jobs'] - len(check['bad_jobs'])}/{check['jobs']}, "
        f"messages left in the vhost's queues: {check['left'] or 'none'} -> "
        f"{'OK' if ok else 'FAILED'}"
    )
    if check["bad_jobs"]:
        print(f"  mismatching jobs (id, status, attempt, step, expected): {check['bad_jobs'][:5]}")
    ratio = rate / raw
    print(f"ratio job-api/raw (best raw run) = {ratio:.2f}x")
    print(f"target >= 1.0x raw ack-each : {verdict(ratio >= 1.0)} ({ratio:.2f}x)")
    print(phases.line())
    if args.profile is not None:
        print(_profile.summary(args.profile))
    if not ok:
        raise SystemExit("verification failed: reports were lost or misapplied")


if __name__ == "__main__":
    asyncio.run(main())
