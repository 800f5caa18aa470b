"""The platform's broker clients on a three-node RabbitMQ cluster: a node dies, then the majority.

A producer publishing with confirms and a consumer, both messaging.Broker given the cluster's URL
list (FTD_AMQP_URL's form), on one of the platform's work queues (a quorum queue, replicated on all
three nodes):

1. SIGKILL the node both are connected to: both move to a survivor; the consumer receives again
   within seconds; no confirmed message is lost (a redelivered one is recognised by its id, as the
   inbox does).
2. Stop a second node's broker (stop_app): one node of three is left, no majority. Publishes are
   not confirmed (the producer sees failures and retries the same ids), never confirmed and lost.
3. Start the killed node again: the majority is back, the withheld publishes are confirmed and
   every confirmed message is consumed.

And a partition (scripts/rabbitmq-cluster.sh partition-node): the node both clients are on is cut
off from the other two. It pauses (pause_minority), its clients move to the majority and go on
there; once the partition heals, the node rejoins with every queue replica back, and no confirmed
message was lost.
"""

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aio_pika.abc import AbstractIncomingMessage
from messaging_testing import eventually

from contracts.routing import BrokerNames
from messaging.broker import Broker, PublishFailure, Unroutable
from messaging.topology import declare_queue, declare_topology, work_queue_specs
from workerlink.failover import FailoverConnection

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.integration,
    pytest.mark.slow,
    # A cluster's start and stop take a minute or two on a loaded machine, beside the test itself.
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists()
        and shutil.which("rabbitmq-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin") is None,
        reason="rabbitmq-server is not installed on this machine",
    ),
]

RESUME_WITHIN = 30.0  # seconds; it takes a few in practice, the margin is for a loaded machine
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster.sh"


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_base() -> int:
    """A first AMQP port whose three AMQP and three distribution ports (+20000) are free."""
    for _ in range(200):
        base = random.randrange(15000, 40000)
        if all(_free(p) for n in range(3) for p in (base + n, base + n + 20000)):
            return base
    raise RuntimeError("no free ports for the cluster")


@dataclass
class Cluster:
    env: dict[str, str]
    base_port: int
    name: str

    def port(self, node: int) -> int:
        return self.base_port + node - 1

    def node(self, node: int) -> str:
        return f"{self.name}{node}@localhost"

    @property
    def urls(self) -> str:
        return self.urls_from(1)

    def urls_from(self, first: int) -> str:
        """The URL list with node `first` first (the node a client connects to at the start)."""
        order = [first, *(n for n in (1, 2, 3) if n != first)]
        return ",".join(f"amqp://guest:guest@127.0.0.1:{self.port(n)}/" for n in order)

    def node_of(self, broker: Broker) -> int:
        """The node `broker` is connected to (or dialling)."""
        connection = broker.connection
        assert isinstance(connection, FailoverConnection)
        assert connection.url.port is not None
        return connection.url.port - self.base_port + 1

    async def run(self, *args: str, timeout: float = 180) -> str:
        process = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        if process.returncode != 0:
            raise RuntimeError(f"rabbitmq-cluster.sh {' '.join(args)}: {err.decode()[-2000:]}")
        return out.decode()

    async def queues(self, node: int) -> dict[str, dict[str, Any]]:
        """name -> {type, members, leader, online} as node `node` sees them."""
        out = await self.run(
            "ctl",
            str(node),
            "-q",
            "list_queues",
            "name",
            "type",
            "members",
            "leader",
            "online",
            "--formatter",
            "json",
        )
        return {q["name"]: q for q in json.loads(out)}

    async def status(self, node: int) -> dict[str, Any]:
        """`cluster_status` as node `node` sees it (running_nodes, partitions, ...)."""
        out = await self.run("ctl", str(node), "-q", "cluster_status", "--formatter", "json")
        status: dict[str, Any] = json.loads(out)
        return status


# Each run has its own node names, ports and state folder: it never meets the system broker on
# 5672 nor a cluster started by hand. The nodes are stopped and the folder removed afterwards,
# whether the test passed or not. Its cluster_partition_handling is pause_minority, as deployed.
@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    with tempfile.TemporaryDirectory(prefix="ftd-cluster-") as tmp:
        name = f"ftd-t{uuid.uuid4().hex[:6]}-c"
        base = _free_base()
        env = {
            **os.environ,
            "FTD_CLUSTER_DIR": str(Path(tmp) / "cluster"),
            "FTD_CLUSTER_NAME": name,
            "FTD_CLUSTER_PORT": str(base),
            "FTD_CLUSTER_PARTITION_HANDLING": "pause_minority",
        }
        made = Cluster(env=env, base_port=base, name=name)
        try:
            await made.run("start")
            yield made
        finally:
            await made.run("stop")


@dataclass
class Producer:
    broker: Broker
    routing_key: str
    confirmed: list[str] = field(default_factory=list)
    failures: int = 0
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    stopping: bool = False

    async def run(self) -> None:
        """Publish m-0, m-1, ... one after another; a message is retried (same id) until the
        broker confirms it, as the outbox relay does."""
        number = 0
        while not self.stopping:
            message_id = f"m-{number}"
            while not self.stopping:
                try:
                    await self.broker.publish_raw(
                        message_id.encode(),
                        routing_key=self.routing_key,
                        message_id=message_id,
                        event_type="test.cluster",
                        timeout=2,
                    )
                except (*PublishFailure, Unroutable):
                    self.failures += 1
                    await asyncio.sleep(0.2)
                    continue
                self.confirmed.append(message_id)
                self.progress.set()
                break
            number += 1
            await asyncio.sleep(0.01)

    async def confirmations(self, count: int, within: float) -> None:
        """Until `count` more messages were confirmed."""
        target = len(self.confirmed) + count
        async with asyncio.timeout(within):
            while len(self.confirmed) < target:
                self.progress.clear()
                await self.progress.wait()


@dataclass
class Consumer:
    broker: Broker
    cluster: Cluster
    deliveries: list[tuple[str, int]] = field(default_factory=list)  # (id, node it came from)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        node = self.cluster.node_of(self.broker)
        self.deliveries.append((message.message_id or "", node))
        self.progress.set()
        await message.ack()

    @property
    def ids(self) -> set[str]:
        return {message_id for message_id, _ in self.deliveries}

    async def wait_for(self, predicate: Callable[[], bool], within: float) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.progress.clear()
                await self.progress.wait()


async def _flowing(producer: Producer, consumer: Consumer) -> asyncio.Task[None]:
    """Starts the producer; its task, once 50 messages were confirmed and consumed."""
    producing = asyncio.create_task(producer.run())
    await producer.confirmations(50, within=30)
    await consumer.wait_for(lambda: len(consumer.ids) >= 50, within=30)
    return producing


async def _wind_down(
    producer: Producer, producing: asyncio.Task[None] | None, *others: Broker
) -> None:
    """Stops the producer's task and closes every client, whatever state the test left them in."""
    producer.stopping = True
    if producing is not None:
        producing.cancel()
        await asyncio.gather(producing, return_exceptions=True)
    for broker in (producer.broker, *others):
        with contextlib.suppress(Exception):
            async with asyncio.timeout(10):
                await broker.close()


async def _connected_to(broker: Broker, cluster: Cluster, node: int, within: float) -> None:
    async with asyncio.timeout(within):
        while True:
            if broker.connection.connected.is_set() and cluster.node_of(broker) == node:
                return
            await asyncio.sleep(0.1)


# A known failure, not yet mended: in 2 of 12 idle runs (3 of 5 in an earlier session) nothing
# was consumed for 60 s after node 1's SIGKILL. With aio-pika's debug log, a failing run shows that
# the clients are not what stops: both were on node 2 0.3 s after the kill, the consumer's
# consume was restored there (ConsumeOk), and the queue had a new leader 0.5 s after the kill. But
# node 2 answered every publish on the producer's new channel with basic.nack (293 in 60 s, not one
# ack), so nothing reached the queue. The work queues are quorum queues with x-overflow
# reject-publish (at-least-once dead-lettering needs it); the guess, unproven, is that a channel
# whose first publish to the queue comes before the new leader is known stays refused.
async def test_no_confirmed_message_is_lost_when_nodes_fail(cluster: Cluster) -> None:
    names = BrokerNames(prefix=f"cl{cluster.name[5:11]}.")
    spec = work_queue_specs(names)[0]
    admin = Broker(cluster.urls, names, client_name="cluster-admin")
    consumer = Consumer(Broker(cluster.urls, names, client_name="cluster-consumer"), cluster)
    producer = Producer(
        Broker(cluster.urls, names, client_name="cluster-producer"), spec.bindings[0]
    )
    producing: asyncio.Task[None] | None = None
    try:
        await admin.connect()
        await declare_topology(await admin.channel(), names, work_queue_specs(names))
        await admin.close()
        queues = await cluster.queues(1)
        for work in work_queue_specs(names):
            assert queues[work.name]["type"] == "quorum"
            assert sorted(queues[work.name]["members"]) == [cluster.node(n) for n in (1, 2, 3)]

        await consumer.broker.connect()
        channel = await consumer.broker.channel(prefetch=20)
        # Declared through the robust channel: aio-pika declares it again and consumes again on
        # whichever node the connection moves to.
        queue = await declare_queue(channel, names, spec)
        await queue.consume(consumer.on_message)
        await producer.broker.connect()
        assert cluster.node_of(consumer.broker) == 1
        assert cluster.node_of(producer.broker) == 1
        producing = await _flowing(producer, consumer)

        # 1. The node both are on dies.
        killed_at = time.monotonic()
        await cluster.run("kill-node", "1")
        await consumer.wait_for(lambda: any(node != 1 for _, node in consumer.deliveries), 60)
        resumed_after = time.monotonic() - killed_at
        print(f"consumer resumed on a survivor {resumed_after:.1f}s after node 1 was killed")
        assert resumed_after < RESUME_WITHIN
        await producer.confirmations(50, within=30)
        survivor = cluster.node_of(consumer.broker)
        assert survivor in (2, 3)

        # 2. The broker on the consumer's node stops too: one node of three, no majority.
        await cluster.run("ctl", str(survivor), "-q", "stop_app")
        last = 5 - survivor  # 2 -> 3, 3 -> 2
        await _connected_to(producer.broker, cluster, last, within=30)
        await _connected_to(consumer.broker, cluster, last, within=30)
        failures = producer.failures
        before = len(producer.confirmed)
        with contextlib.suppress(TimeoutError):
            await producer.confirmations(1, within=6)
        assert len(producer.confirmed) == before, "a publish was confirmed without a majority"
        assert producer.failures > failures
        print(f"without a majority: {producer.failures - failures} publishes not confirmed")

        # 3. The killed node comes back: a majority again.
        await cluster.run("start-node", "1")
        await producer.confirmations(20, within=90)
        producer.stopping = True
        await producing
        confirmed = set(producer.confirmed)
        await consumer.wait_for(lambda: confirmed <= consumer.ids, within=60)
        duplicates = len(consumer.deliveries) - len(consumer.ids)
        print(
            f"confirmed {len(confirmed)}, consumed {len(consumer.ids)} distinct, "
            f"{duplicates} redelivered, {producer.failures} publish failures retried"
        )
        assert len(producer.confirmed) == len(confirmed)  # each id confirmed once
    finally:
        await _wind_down(producer, producing, consumer.broker, admin)


async def test_a_partitioned_node_pauses_and_its_clients_go_on_with_the_majority(
    cluster: Cluster,
) -> None:
    names = BrokerNames(prefix=f"cp{cluster.name[5:11]}.")
    spec = work_queue_specs(names)[0]
    admin = Broker(cluster.urls, names, client_name="partition-admin")
    # Both clients start on node 3, the node that will be cut off.
    consumer = Consumer(
        Broker(cluster.urls_from(3), names, client_name="partition-consumer"), cluster
    )
    producer = Producer(
        Broker(cluster.urls_from(3), names, client_name="partition-producer"), spec.bindings[0]
    )
    producing: asyncio.Task[None] | None = None
    try:
        await admin.connect()
        await declare_topology(await admin.channel(), names, work_queue_specs(names))
        await admin.close()
        await consumer.broker.connect()
        queue = await declare_queue(await consumer.broker.channel(prefetch=20), names, spec)
        await queue.consume(consumer.on_message)
        await producer.broker.connect()
        assert cluster.node_of(consumer.broker) == cluster.node_of(producer.broker) == 3
        producing = await _flowing(producer, consumer)

        # The partition: node 3 pauses, its clients move to node 1 or 2 and go on there.
        cut_at = time.monotonic()
        await cluster.run("partition-node", "3")
        await consumer.wait_for(lambda: any(node != 3 for _, node in consumer.deliveries), 60)
        moved_after = time.monotonic() - cut_at
        await producer.confirmations(50, within=30)
        assert cluster.node_of(producer.broker) in (1, 2)
        assert cluster.node_of(consumer.broker) in (1, 2)

        async def majority_without_node_3() -> bool:
            running = (await cluster.status(1))["running_nodes"]
            return sorted(running) == [cluster.node(1), cluster.node(2)]

        await eventually(majority_without_node_3, timeout=30, interval=1)
        print(f"clients went on with the majority {moved_after:.1f}s after node 3 was cut off")

        # Healed: node 3 sees the majority again, starts again and is a queue member again.
        healed_at = time.monotonic()
        await cluster.run("heal-node", "3")

        async def whole_again() -> bool:
            status = await cluster.status(1)
            every = [cluster.node(n) for n in (1, 2, 3)]
            online = (await cluster.queues(1))[spec.name]["online"]
            return (
                sorted(status["running_nodes"]) == every
                and not status.get("partitions")
                and sorted(online) == every
            )

        await eventually(whole_again, timeout=120, interval=1)
        print(f"node 3 rejoined {time.monotonic() - healed_at:.1f}s after the partition healed")
        await producer.confirmations(20, within=30)
        producer.stopping = True
        await producing
        confirmed = set(producer.confirmed)
        await consumer.wait_for(lambda: confirmed <= consumer.ids, within=60)
        print(
            f"confirmed {len(confirmed)}, consumed {len(consumer.ids)} distinct, "
            f"{len(consumer.deliveries) - len(consumer.ids)} redelivered, "
            f"{producer.failures} publish failures retried"
        )
        assert len(producer.confirmed) == len(confirmed)
    finally:
        await _wind_down(producer, producing, consumer.broker, admin)
