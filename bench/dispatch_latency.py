"""Dispatch latency: from `POST /api/finetune/jobs` to a worker holding a granted claim, against
the raw durable chain a careful engineer would write (the floor), measured in the same run.

job-api runs as `job-api serve` (uvicorn, subprocess) with relay, consumers, RPC server and
watchdog. A BrokerLink (provider local, job type embedding) runs in this process as its own
task: next_offer -> take (claim RPC, then ack). Jobs are sent one at a time:

  t0  just before the POST (LeanHttpClient below, keep-alive, a real JWT)
  t1  when the worker task holds the granted ClaimReply (the offer acknowledged)

Floor (same database server, same broker, same number of iterations), all raw asyncpg + aio-pika
in this process:
  t0  BEGIN; INSERT job; INSERT outbox row (job.created envelope); COMMIT      (asyncpg pool)
  ->  publish the outbox row with confirm (persistent, mandatory) through a topic exchange to a
      quorum work queue; the row is then deleted in the background (the relay's bookkeeping)
  ->  a consumer (prefetch 1, its own connection) receives it and sends a claim request
      (reply_to, over a confirming channel) through a direct exchange to a quorum RPC queue
  ->  the claim server (its own connection, prefetch 64) runs BEGIN; UPDATE ... WHERE id AND
      status='pending' RETURNING *; COMMIT on its own pool and replies through the default
      exchange
  t1  the consumer has the reply and acknowledges the offer
The tables are shaped like job-api's (bench/_floor_app.py's DDL, in the `floor` schema).

For reference, the same chain without the database (bare aio-pika) is measured too. The three
chains run side by side and their samples are interleaved (one of each in turn, the order
rotating), so a load swing on a shared machine hits all of them alike.

Target (issue 5): job-api <= 1.5 x the floor (p50; p95 and p99 reported against the same bound).
A miss is printed, never raised.

  uv run python bench/dispatch_latency.py [--quick] [--jobs N] [--warmup N] [--client httpx]
                                          [--server-env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httptools
import httpx
import orjson
from _common import (
    LatencySummary,
    Stack,
    add_server_env_option,
    bench_stack,
    bench_worker,
    job_api_server,
    job_body,
    machine_note,
    quiet_logging,
    server_env,
    table,
    verdict,
)
from _floor_app import DDL, INSERT_JOB, INSERT_OUTBOX
from aio_pika.abc import AbstractIncomingMessage

from contracts.routing import BrokerNames
from messaging.topology import declare_core, quorum_arguments
from workerlink.link import BrokerLink

# --------------------------------------------------------------------------- job-api

# A sample: its parts in seconds, "total" among them.
Sample = dict[str, float]


class _Response:
    """httptools' callbacks for one response: its body, and whether it is complete."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.done = False

    def on_body(self, part: bytes) -> None:
        self.chunks.append(part)

    def on_message_complete(self) -> None:
        self.done = True


class LeanHttpClient:
    """A keep-alive HTTP/1.1 client over one TCP connection: the request goes out as one write,
    the response is parsed by httptools (uvicorn's own parser). Used for the POST so that what
    is measured is job-api, not the client library: httpx took about 0.7 ms here from the call
    to the request's bytes reaching the server (its request building and connection pool), a
    cost a faster client does not pay and the floor, which has no HTTP hop, does not carry."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self._head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def post_json(self, path: str, body: Any) -> tuple[int, bytes]:
        assert self._reader is not None
        assert self._writer is not None
        data = orjson.dumps(body)
        self._writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._head}"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode()
            + data
        )
        response = _Response()
        parser = httptools.HttpResponseParser(response)
        while not response.done:
            part = await self._reader.read(65536)
            if not part:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(part)
        return parser.get_status_code(), b"".join(response.chunks)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()


class HttpxClient:
    """`--client httpx`: the same POST through httpx.AsyncClient (keep-alive), for comparison."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30)

    async def connect(self) -> None:
        return None

    async def post_json(self, path: str, body: Any) -> tuple[int, bytes]:
        response = await self._client.post(path, json=body)
        return response.status_code, response.content

    async def close(self) -> None:
        await self._client.aclose()


class JobApiChain:
    """`job-api serve` in a subprocess and a BrokerLink task in this process."""

    def __init__(self, stack: Stack, extra_env: dict[str, str], client: str = "lean") -> None:
        self.client_kind = client
        self.stack = stack
        self.server = job_api_server(stack, **extra_env)
        self.worker: BrokerLink | None = None
        self.task: asyncio.Task[None] | None = None
        self.claimed: dict[uuid.UUID, asyncio.Future[tuple[float, float]]] = {}
        self.client: LeanHttpClient | HttpxClient | None = None

    def _slot(self, job_id: uuid.UUID) -> asyncio.Future[tuple[float, float]]:
        return self.claimed.setdefault(job_id, asyncio.get_running_loop().create_future())

    async def _work(self, worker: BrokerLink) -> None:
        while True:
            offer = await worker.next_offer()
            t_offer = time.perf_counter()
            reply = await worker.claim(offer)
            t1 = time.perf_counter()
            if not reply.granted or reply.job is None or reply.job.attempt != 1:
                self._slot(offer.job_id).set_exception(RuntimeError(f"claim refused: {reply}"))
            else:
                self._slot(offer.job_id).set_result((t_offer, t1))

    async def start(self) -> None:
        await self.server.start()
        self.worker = await bench_worker(self.stack, self.server)
        self.task = asyncio.create_task(self._work(self.worker))
        url = httpx.URL(self.server.base_url)
        self.client = (
            HttpxClient(self.server.base_url, self.stack.user_headers())
            if self.client_kind == "httpx"
            else LeanHttpClient(url.host, url.port or 80, self.stack.user_headers())
        )
        await self.client.connect()

    async def sample(self, i: int) -> Sample:
        assert self.client is not None
        assert self.task is not None
        t0 = time.perf_counter()
        status, answer = await self.client.post_json("/api/finetune/jobs", job_body(i))
        if status != 201:
            raise RuntimeError(f"POST answered {status}: {answer[:500]!r}")
        t_post = time.perf_counter()
        job_id = uuid.UUID(orjson.loads(answer)["data"]["id"])
        if self.task.done():
            self.task.result()
        t_offer, t1 = await asyncio.wait_for(self._slot(job_id), 15)
        self.claimed.pop(job_id)
        return {"total": t1 - t0, "post": t_post - t0, "offer": t_offer - t0, "claim": t1 - t_offer}

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.worker is not None:
            await self.worker.close(flush_timeout=1)
        await self.server.stop()


# --------------------------------------------------------------------------- the broker half

# Bodies of the size the real chain carries (ClaimJob request, ClaimReply with the JobSpec).
_REQUEST_PAD = "x" * 160
_REPLY_PAD = "x" * 120

# The claim server's handler: request body -> reply body.
Serve = Callable[[bytes], Awaitable[bytes]]


class Chain:
    """The broker half of a dispatch chain, raw aio-pika: publisher, consumer ("worker") and
    claim server on three connections, as three processes would hold them."""

    def __init__(self, stack: Stack, label: str, serve: Serve) -> None:
        self.stack = stack
        self.names = BrokerNames(f"{label}.")
        self.work_q = f"{label}.work"
        self.rpc_q = f"{label}.rpc"
        self.rpc_x = f"{label}.rpc"
        self.serve = serve
        self.conns: list[aio_pika.abc.AbstractRobustConnection] = []
        self.done: dict[str, asyncio.Future[tuple[float, float]]] = {}

    async def start(self) -> None:
        for role in ("pub", "worker", "server"):
            self.conns.append(
                await aio_pika.connect_robust(
                    self.stack.amqp_url, client_properties={"connection_name": f"floor-{role}"}
                )
            )
        pub_conn, wrk_conn, srv_conn = self.conns
        setup = await pub_conn.channel()
        await declare_core(setup, self.names)
        args = quorum_arguments(self.names)
        work = await setup.declare_queue(self.work_q, durable=True, arguments=args)
        await work.bind(self.names.events_exchange, routing_key="job.created.#")
        rpc_x = await setup.declare_exchange(self.rpc_x, aio_pika.ExchangeType.TOPIC, durable=True)
        rpc = await setup.declare_queue(self.rpc_q, durable=True, arguments=args)
        await rpc.bind(rpc_x, routing_key=self.rpc_q)
        await setup.close()

        # Publisher: confirmed, persistent, mandatory (as a relay does).
        pub_ch = await pub_conn.channel(publisher_confirms=True)
        self.events = await pub_ch.get_exchange(self.names.events_exchange, ensure=False)

        # Claim server: prefetch 64, replies through the default exchange without confirms.
        srv_ch = await srv_conn.channel(publisher_confirms=False)
        await srv_ch.set_qos(prefetch_count=64)

        async def on_request(message: AbstractIncomingMessage) -> None:
            body = await self.serve(message.body)
            if message.reply_to:
                await srv_ch.default_exchange.publish(
                    aio_pika.Message(
                        body=body,
                        correlation_id=message.correlation_id,
                        content_type="application/json",
                    ),
                    routing_key=message.reply_to,
                )
            await message.ack()

        await (await srv_ch.get_queue(self.rpc_q)).consume(on_request)

        # Worker: a confirming channel with an exclusive reply queue (as RpcClient), and the work
        # queue with prefetch 1 (as BrokerLink).
        rpc_ch = await wrk_conn.channel(publisher_confirms=True)
        rpc_exchange = await rpc_ch.get_exchange(self.rpc_x, ensure=False)
        reply_q = await rpc_ch.declare_queue(exclusive=True, auto_delete=True)
        pending: dict[str, asyncio.Future[bytes]] = {}
        loop = asyncio.get_running_loop()

        async def on_reply(message: AbstractIncomingMessage) -> None:
            fut = pending.pop(message.correlation_id or "", None)
            if fut is not None and not fut.done():
                fut.set_result(message.body)

        await reply_q.consume(on_reply, no_ack=True)
        work_ch = await wrk_conn.channel(publisher_confirms=True)
        await work_ch.set_qos(prefetch_count=1)

        async def on_offer(message: AbstractIncomingMessage) -> None:
            t_offer = time.perf_counter()
            offer = orjson.loads(message.body)
            cid = uuid.uuid4().hex
            fut: asyncio.Future[bytes] = loop.create_future()
            pending[cid] = fut
            request = {
                "job_id": offer["data"]["job_id"],
                "worker_id": "floor-w1",
                "claim_id": cid,
                "provider": "local",
                "job_types": ["embedding"],
                "pad": _REQUEST_PAD,
            }
            await rpc_exchange.publish(
                aio_pika.Message(
                    body=orjson.dumps(request),
                    correlation_id=cid,
                    reply_to=reply_q.name,
                    content_type="application/json",
                    expiration=10,
                ),
                routing_key=self.rpc_q,
            )
            reply = orjson.loads(await asyncio.wait_for(fut, 10))
            await message.ack()
            t1 = time.perf_counter()
            result = self.done.get(message.message_id or "")
            if result is None or result.done():
                return
            if reply.get("granted"):
                result.set_result((t_offer, t1))
            else:
                result.set_exception(RuntimeError(f"floor claim refused: {reply}"))

        await (await work_ch.get_queue(self.work_q)).consume(on_offer)

    async def publish(self, message_id: str, body: bytes, routing_key: str) -> None:
        await self.events.publish(
            aio_pika.Message(
                body=body,
                message_id=message_id,
                content_type="application/cloudevents+json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key,
            mandatory=True,
        )

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()


def envelope(job_id: uuid.UUID, now: datetime, i: int) -> tuple[uuid.UUID, bytes]:
    event_id = uuid.uuid4()
    body = {
        "specversion": "1.0",
        "id": str(event_id),
        "source": "job-api",
        "type": "job.created",
        "time": now.isoformat(),
        "datacontenttype": "application/json",
        "data": {
            "job_id": str(job_id),
            "user_id": "bench-user",
            "project_id": None,
            "job_type": "embedding",
            "gpu_provider": "local",
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
            "output_model": f"bench/embedding-{i}",
            "dataset_id": None,
            "hyperparameters": {"epochs": 1, "batch_size": 16, "learning_rate": 2e-5},
            "created_at": now.isoformat(),
        },
    }
    return event_id, orjson.dumps(body)


# --------------------------------------------------------------------------- the floor

CLAIM = """
UPDATE floor.jobs SET status = 'running', phase = 'training', attempt = attempt + 1,
    worker_id = $2, claim_id = $3, lease_expires_at = now() + interval '90 seconds',
    started_at = now(), updated_at = now()
WHERE id = $1 AND status = 'pending'
RETURNING id, user_id, job_type, base_model, training_data_url, output_model, gpu_provider,
    hyperparameters, attempt, lease_expires_at
"""


async def _jsonb(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


class FloorChain:
    """The floor: raw asyncpg on both database sides, the raw broker chain between them."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.chain = Chain(stack, "floor", self._serve)
        self.pools: list[asyncpg.Pool] = []
        self.background: set[asyncio.Task[Any]] = set()

    async def _serve(self, body: bytes) -> bytes:
        request = orjson.loads(body)
        async with self.pools[1].acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                CLAIM, uuid.UUID(request["job_id"]), request["worker_id"], request["claim_id"]
            )
        if row is None:
            return orjson.dumps({"granted": False, "refusal": "not_pending"})
        job = {k: (str(v) if isinstance(v, uuid.UUID | datetime) else v) for k, v in row.items()}
        return orjson.dumps({"granted": True, "job": job, "pad": _REPLY_PAD})

    async def start(self) -> None:
        setup = await asyncpg.connect(self.stack.database_url)
        try:
            await setup.execute(DDL)
        finally:
            await setup.close()
        for _ in ("api", "claims"):
            self.pools.append(
                await asyncpg.create_pool(
                    self.stack.database_url, min_size=2, max_size=2, init=_jsonb
                )
            )
        await self.chain.start()

    async def sample(self, i: int) -> Sample:
        api_pool = self.pools[0]
        job_id = uuid.uuid4()
        now = datetime.now(UTC)
        hyper = {"epochs": 1, "batch_size": 16, "learning_rate": 2e-5, "warmup_ratio": 0.1}
        event_id, body = envelope(job_id, now, i)
        fut = self.chain.done[str(event_id)] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        async with api_pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_JOB,
                job_id,
                "bench-user",
                None,
                "embedding",
                "sentence-transformers/all-MiniLM-L6-v2",
                "https://data.example.com/train.csv",
                f"bench/embedding-{i}",
                "local",
                hyper,
                3,
                now,
            )
            await conn.execute(
                INSERT_OUTBOX, event_id, "job.created", "job.created.embedding.local", body
            )
        t_commit = time.perf_counter()
        await self.chain.publish(str(event_id), body, "job.created.embedding.local")
        t_confirm = time.perf_counter()
        # The relay's bookkeeping, off the measured path (as a relay does it after the confirm).
        task = asyncio.create_task(
            api_pool.execute("DELETE FROM floor.outbox WHERE event_id = $1", event_id)
        )
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        t_offer, t1 = await asyncio.wait_for(fut, 15)
        del self.chain.done[str(event_id)]
        return {
            "total": t1 - t0,
            "commit": t_commit - t0,
            "confirm": t_confirm - t0,
            "offer": t_offer - t0,
            "claim": t1 - t_offer,
        }

    async def close(self) -> None:
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.chain.close()
        for pool in self.pools:
            await pool.close()


# --------------------------------------------------------------------------- bare broker chain


class BareChain:
    """The floor's broker half alone: no database on either side (reference)."""

    def __init__(self, stack: Stack) -> None:
        self.chain = Chain(stack, "bare", self._serve)

    @staticmethod
    async def _serve(body: bytes) -> bytes:
        request = orjson.loads(body)
        return orjson.dumps({"granted": True, "job": request, "pad": _REPLY_PAD * 4})

    async def start(self) -> None:
        await self.chain.start()

    async def sample(self, i: int) -> Sample:
        event_id, body = envelope(uuid.uuid4(), datetime.now(UTC), i)
        fut = self.chain.done[str(event_id)] = asyncio.get_running_loop().create_future()
        t0 = time.perf_counter()
        await self.chain.publish(str(event_id), body, "job.created.embedding.local")
        _, t1 = await asyncio.wait_for(fut, 15)
        del self.chain.done[str(event_id)]
        return {"total": t1 - t0}

    async def close(self) -> None:
        await self.chain.close()


# --------------------------------------------------------------------------- report


def report(
    job_api: LatencySummary,
    floor: LatencySummary,
    bare: LatencySummary,
    api_parts: dict[str, LatencySummary],
    floor_parts: dict[str, LatencySummary],
) -> None:
    def row(name: str, s: LatencySummary) -> list[Any]:
        return [name, s.n, s.p50, s.p95, s.p99, s.mean, s.max]

    rows: list[list[Any]] = [
        row("bare aio-pika chain, no database (reference)", bare),
        row("floor: asyncpg tx -> confirm -> consume -> claim tx -> reply -> ack", floor),
        row("  of which: t0 -> job + outbox committed", floor_parts["commit"]),
        row("  of which: t0 -> publish confirmed", floor_parts["confirm"]),
        row("  of which: t0 -> offer at worker", floor_parts["offer"]),
        row("  of which: offer -> claim granted + ack", floor_parts["claim"]),
        row("job-api: POST -> granted claim", job_api),
        row("  of which: t0 -> POST answered", api_parts["post"]),
        row("  of which: t0 -> offer at worker", api_parts["offer"]),
        row("  of which: offer -> claim granted + ack", api_parts["claim"]),
    ]
    print(table(["chain (ms)", "n", "p50", "p95", "p99", "mean", "max"], rows))
    print()
    ratios = {
        "p50": job_api.p50 / floor.p50,
        "p95": job_api.p95 / floor.p95,
        "p99": job_api.p99 / floor.p99,
    }
    print(
        table(
            ["percentile", "floor ms", "job-api ms", "job-api/floor", "target <= 1.5x"],
            [
                [name, getattr(floor, name), getattr(job_api, name), f"{r:.2f}x", verdict(r <= 1.5)]
                for name, r in ratios.items()
            ],
        )
    )
    print()
    print(
        f"target p50(job-api) <= 1.5x p50(floor): {verdict(ratios['p50'] <= 1.5)} "
        f"({ratios['p50']:.2f}x)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 jobs instead of 300")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument(
        "--client",
        choices=["lean", "httpx"],
        default="lean",
        help="HTTP client for the POST (default: the minimal one; httpx for comparison)",
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    n = args.jobs or (50 if args.quick else 300)
    quiet_logging()
    print(
        f"dispatch latency: {n} sequential jobs per chain after {args.warmup} warm-up, the three "
        f"chains interleaved; {machine_note()}"
    )
    samples: dict[str, list[Sample]] = {"bare": [], "floor": [], "job-api": []}
    cpu_per_job = 0.0
    async with bench_stack("dispatch") as stack:
        job_api = JobApiChain(stack, server_env(args), client=args.client)
        chains: dict[str, BareChain | FloorChain | JobApiChain] = {
            "bare": BareChain(stack),
            "floor": FloorChain(stack),
            "job-api": job_api,
        }
        started: list[BareChain | FloorChain | JobApiChain] = []
        try:
            for chain in chains.values():
                await chain.start()
                started.append(chain)
            names = list(chains)
            cpu_start = 0.0
            for i in range(args.warmup + n):
                if i == args.warmup:
                    cpu_start = job_api.server.cpu_seconds()
                # Interleaved, the order rotating: a load swing on a shared machine hits all three.
                for name in names[i % 3 :] + names[: i % 3]:
                    sample = await chains[name].sample(i)
                    if i >= args.warmup:
                        samples[name].append(sample)
            cpu_per_job = (job_api.server.cpu_seconds() - cpu_start) / n
        finally:
            for chain in reversed(started):
                await chain.close()

    def summary(name: str, part: str = "total") -> LatencySummary:
        return LatencySummary.of([s[part] for s in samples[name]])

    print()
    report(
        summary("job-api"),
        summary("floor"),
        summary("bare"),
        {k: summary("job-api", k) for k in ("post", "offer", "claim")},
        {k: summary("floor", k) for k in ("commit", "confirm", "offer", "claim")},
    )
    print(
        f"job-api process CPU per dispatched job (POST, relay, claim, all its background work): "
        f"{cpu_per_job * 1000:.2f} ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
