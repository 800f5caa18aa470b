"""Request/reply over the broker: round trips matched by correlation id, and timeouts."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from messaging_testing import AMQP_URL, Topology, eventually, job_created
from pydantic import BaseModel

from contracts.credentials import new_token
from contracts.enums import GPUProvider, JobType
from contracts.events import Envelope
from contracts.routing import CLAIM_KEY, JOB_API, SHARED_POOL
from contracts.rpc import ClaimJob, ClaimReply, DataTicket, JobSpec
from messaging.rpc import Answer, RpcServer
from messaging.topology import consumer_count
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink
from workerlink.rpc import RpcClient, RpcTimeout

pytestmark = pytest.mark.integration


class Ping(BaseModel):
    n: int
    fail: bool = False


class Pong(BaseModel):
    n: int
    doubled: int


async def handle(body: bytes) -> Pong:
    ping = Ping.model_validate_json(body)  # a bad request raises ValidationError
    if ping.fail:
        raise RuntimeError("handler failed")
    await asyncio.sleep(0.01 * (ping.n % 3))  # replies come back out of order
    return Pong(n=ping.n, doubled=2 * ping.n)


@contextlib.asynccontextmanager
async def serving(
    topology: Topology,
    queue: str,
    handler: Callable[[bytes], Awaitable[BaseModel | Answer]] = handle,
) -> AsyncIterator[None]:
    server = RpcServer(broker=topology.broker, queue=queue, handler=handler)
    task = asyncio.create_task(server.run())

    async def ready() -> bool:
        channel = await topology.broker.channel()
        try:
            return await consumer_count(channel, queue) == 1
        finally:
            await channel.close()

    try:
        await eventually(ready)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class QueueClient:
    """The worker's RPC client (workerlink), sending straight to a queue (the default exchange):
    this lib's tests have no claims exchange."""

    def __init__(self, rpc: RpcClient) -> None:
        self._rpc = rpc

    async def call(
        self, queue: str, request: BaseModel, reply_type: type[Pong], *, timeout: float = 10
    ) -> Pong:
        return await self._rpc.call("", queue, request, reply_type, timeout=timeout)


@contextlib.asynccontextmanager
async def client(topology: Topology) -> AsyncIterator[QueueClient]:
    rpc = RpcClient(topology.broker.connection, reply_queue=f"{topology.names.prefix}reply")
    await rpc.start()
    try:
        yield QueueClient(rpc)
    finally:
        await rpc.close()


async def test_an_answers_follow_up_runs_once_and_a_failing_one_breaks_nothing(
    topology: Topology,
) -> None:
    """`Answer.then` (a log line, counters, a connection to give back; a function or a coroutine
    function) runs once per request, after the reply is sent; one that fails is logged, and the
    reply and the server are unaffected."""
    queue = await topology.declare("svc.rpc")
    followed: list[int] = []

    async def answer(body: bytes) -> Answer:
        ping = Ping.model_validate_json(body)

        def then() -> None:
            followed.append(ping.n)
            if ping.fail:
                raise RuntimeError("follow-up failed")

        async def then_later() -> None:
            await asyncio.sleep(0.01)
            followed.append(ping.n)

        return Answer(Pong(n=ping.n, doubled=2 * ping.n), then_later if ping.n % 2 == 0 else then)

    async with serving(topology, queue, answer), client(topology) as rpc:
        assert await rpc.call(queue, Ping(n=1, fail=True), Pong) == Pong(n=1, doubled=2)
        assert await rpc.call(queue, Ping(n=2), Pong) == Pong(n=2, doubled=4)
        assert await rpc.call(queue, Ping(n=3), Pong) == Pong(n=3, doubled=6)
        await eventually(lambda: asyncio.sleep(0, len(followed) == 3))
    assert sorted(followed) == [1, 2, 3], "once each (2's follow-up, awaited, may end last)"


async def test_round_trip_and_concurrent_calls(topology: Topology) -> None:
    queue = await topology.declare("svc.rpc")
    async with serving(topology, queue), client(topology) as rpc:
        assert await rpc.call(queue, Ping(n=21), Pong) == Pong(n=21, doubled=42)
        replies = await asyncio.gather(*(rpc.call(queue, Ping(n=i), Pong) for i in range(30)))
    assert [r.n for r in replies] == list(range(30))
    assert all(r.doubled == 2 * r.n for r in replies)


async def test_call_times_out_when_no_server_answers(topology: Topology) -> None:
    queue = await topology.declare("svc.rpc")
    loop = asyncio.get_running_loop()
    async with client(topology) as rpc:
        started = loop.time()
        with pytest.raises(RpcTimeout):
            await rpc.call(queue, Ping(n=1), Pong, timeout=0.5)
        assert loop.time() - started < 2
        # Not even a queue: the request is dropped, the caller still gets its timeout.
        with pytest.raises(RpcTimeout):
            await rpc.call(f"{topology.names.prefix}nobody.rpc", Ping(n=1), Pong, timeout=0.3)


async def test_failed_or_malformed_requests_get_no_reply_and_the_server_goes_on(
    topology: Topology,
) -> None:
    queue = await topology.declare("svc.rpc")
    async with serving(topology, queue), client(topology) as rpc:
        with pytest.raises(RpcTimeout):
            await rpc.call(queue, Ping(n=1, fail=True), Pong, timeout=0.5)

        class NotAPing(BaseModel):
            hello: str = "world"

        with pytest.raises(RpcTimeout):
            await rpc.call(queue, NotAPing(), Pong, timeout=0.5)
        assert await rpc.call(queue, Ping(n=4), Pong) == Pong(n=4, doubled=8)


async def test_worker_take_retries_a_lost_claim_reply_with_the_same_claim_id(
    topology: Topology,
) -> None:
    """The claim is idempotent by claim id, so a worker whose reply got lost asks again with the
    same id (and is re-granted the same attempt) before it acknowledges the offer."""
    names = topology.names
    work = await topology.declare(
        names.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL).removeprefix(names.prefix),
        names.work_bindings(JobType.EMBEDDING, GPUProvider.LOCAL),
    )
    rpc_queue = await topology.declare(
        names.rpc_queue(JOB_API).removeprefix(names.prefix),
        [CLAIM_KEY],
        exchange=names.claims_exchange,
    )
    seen: list[ClaimJob] = []

    async def claim(body: bytes) -> ClaimReply:
        cmd = ClaimJob.model_validate_json(body)
        seen.append(cmd)
        if len(seen) == 1:
            raise RuntimeError("the reply to this one is lost")
        return ClaimReply(
            granted=True,
            job=JobSpec(
                job_id=cmd.job_id,
                attempt=1,
                claim_secret="s3cret",
                job_type=JobType.EMBEDDING,
                base_model="m",
                output_model="alice/m",
                hyperparameters={},
                data=DataTicket(url="https://data.example.com/x.csv"),
                lease_seconds=90,
                lease_expires_at=datetime.now(UTC) + timedelta(seconds=90),
            ),
        )

    server = RpcServer(broker=topology.broker, queue=rpc_queue, handler=claim)
    task = asyncio.create_task(server.run())
    worker = BrokerLink(
        AMQP_URL,
        names,
        # The handler here does not check signatures: any well-formed identity does.
        identity=WorkerIdentity.of(new_token(uuid.uuid4().hex).token, SHARED_POOL),
        provider=GPUProvider.LOCAL,
        job_types=[JobType.EMBEDDING],
    )
    await worker.connect()
    await worker.resume_offers()
    try:
        created = job_created()
        await topology.broker.publish(
            Envelope.wrap(created, source="job-api"), created.routing_key()
        )
        offer = await worker.next_offer(timeout=10)
        assert offer.job_id == created.job_id
        reply = await worker.claim(offer, timeout=0.5)
        assert reply.granted
        assert len(seen) == 2
        assert seen[0].claim_id == seen[1].claim_id
        await worker.close(flush_timeout=1)  # an unacknowledged offer would go back
        assert await topology.depth(work) == 0
    finally:
        await worker.close(flush_timeout=1)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
