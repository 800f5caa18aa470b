"""Each service's broker user as deploy/rabbitmq/definitions.json ships it (compose, Helm) may
declare the topology the service declares at start-up, on the local RabbitMQ: its permissions
loaded into a fresh vhost (the user renamed, users being broker-wide), the service's own
`declare_topology` run as that user. A service that declared what only job-api may configure (the
worker exchange) would be refused here, as it was in the compose stack.
"""

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import aiormq
import httpx
import pytest

from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.topology import QueueSpec, declare_topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = json.loads((ROOT / "deploy/rabbitmq/definitions.json").read_text())
MANAGEMENT = "http://127.0.0.1:15672/api"
GUEST = ("guest", "guest")


def _specs(service: str) -> Callable[[Broker], list[QueueSpec]]:
    from data_service.entrypoints.workers import queue_specs as data_queues
    from job_api.entrypoints.workers import queue_specs as job_queues
    from model_server.entrypoints.workers import queue_specs as model_server_queues
    from registry_service.entrypoints.workers import queue_specs as registry_queues
    from webhook_service.entrypoints.workers import queue_specs as webhook_queues

    specs: dict[str, Callable[[Broker], list[QueueSpec]]] = {
        "job-api": job_queues,
        "data-service": data_queues,
        "registry-service": registry_queues,
        "model-server": model_server_queues,
        "webhook-service": webhook_queues,
    }
    return specs[service]


def _permission(user: str) -> dict[str, Any]:
    return next(p for p in DEFINITIONS["permissions"] if p["user"] == user)


async def _declare_as(user: str, declare_first: str | None = None) -> None:
    """`user`'s shipped permissions in a fresh vhost; `declare_first`'s topology (as guest, a
    service that starts earlier) then `user`'s own, as `user`."""
    tag = uuid.uuid4().hex[:8]
    vhost, login, password = f"ftd-svc-{tag}", f"{user}-test-{tag}", uuid.uuid4().hex
    grant = {k: _permission(user)[k] for k in ("configure", "write", "read")}
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=GUEST, timeout=30) as api:
        (await api.put(f"/vhosts/{quote(vhost, safe='')}")).raise_for_status()
        try:
            for who, rights in (("guest", {k: ".*" for k in grant}), (login, grant)):
                if who == login:
                    (
                        await api.put(f"/users/{login}", json={"password": password, "tags": ""})
                    ).raise_for_status()
                (
                    await api.put(f"/permissions/{quote(vhost, safe='')}/{who}", json=rights)
                ).raise_for_status()
            vhost_path = quote(vhost, safe="")
            if declare_first is not None:
                first = Broker(
                    f"amqp://guest:guest@127.0.0.1:5672/{vhost_path}",
                    BrokerNames(),
                    client_name="first",
                )
                await first.connect()
                try:
                    channel = await first.channel()
                    await declare_topology(channel, first.names, _specs(declare_first)(first))
                finally:
                    await first.close()
            broker = Broker(
                f"amqp://{login}:{password}@127.0.0.1:5672/{vhost_path}",
                BrokerNames(),
                client_name=user,
            )
            await broker.connect()
            try:
                channel = await broker.channel()
                await declare_topology(channel, broker.names, _specs(user)(broker))
            finally:
                await broker.close()
        finally:
            await api.delete(f"/users/{login}")
            await api.delete(f"/vhosts/{quote(vhost, safe='')}")


@pytest.mark.parametrize(
    "service", ["data-service", "registry-service", "model-server", "webhook-service"]
)
async def test_a_service_declares_its_topology_with_its_shipped_permissions(service: str) -> None:
    # job-api starts first in every deployment (the others wait for it), as here.
    await _declare_as(service, declare_first="job-api")


async def test_job_api_declares_the_whole_core_topology_itself() -> None:
    await _declare_as("job-api")


async def test_the_worker_exchange_stays_job_apis() -> None:
    """The grant this suite relies on is narrow: data-service may not configure the worker
    exchange (so declaring it, as every service once did, is refused)."""
    tag = uuid.uuid4().hex[:8]
    vhost, login, password = f"ftd-svc-{tag}", f"data-service-test-{tag}", uuid.uuid4().hex
    grant = {k: _permission("data-service")[k] for k in ("configure", "write", "read")}
    async with httpx.AsyncClient(base_url=MANAGEMENT, auth=GUEST, timeout=30) as api:
        (await api.put(f"/vhosts/{quote(vhost, safe='')}")).raise_for_status()
        try:
            (
                await api.put(f"/users/{login}", json={"password": password, "tags": ""})
            ).raise_for_status()
            (
                await api.put(f"/permissions/{quote(vhost, safe='')}/{login}", json=grant)
            ).raise_for_status()
            url = f"amqp://{login}:{password}@127.0.0.1:5672/{quote(vhost, safe='')}"
            connection = await aio_pika.connect(url)
            try:
                channel = await connection.channel()
                with pytest.raises(aiormq.exceptions.ChannelAccessRefused):
                    await channel.declare_exchange(
                        BrokerNames().worker_exchange, aio_pika.ExchangeType.TOPIC, durable=True
                    )
            finally:
                await connection.close()
        finally:
            await api.delete(f"/users/{login}")
            await api.delete(f"/vhosts/{quote(vhost, safe='')}")
