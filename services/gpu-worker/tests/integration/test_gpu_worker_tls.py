"""The worker's amqps path against the real broker, behind a TLS-terminating proxy that requires a
client certificate (tls_testing.py): the ssl context ftd-worker builds from --ca-file/--cert-file/
--key-file connects and can use the broker; without the CA, without the client certificate, or to a
server whose certificate names another host, it is refused."""

import asyncio
import contextlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from gpu_worker_harness import AMQP_URL
from job_api_testing import enroll_over_http
from tls_testing import CLIENT_NAME, Pki, TlsProxy, make_pki, server_context
from yarl import URL

from contracts.credentials import new_token
from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from gpu_worker.config import WorkerSettings
from gpu_worker.entrypoints.supervisor import build_link
from job_api.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import consumer_count, declare_topology
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink
from workerlink.tls import certificate_problem

pytestmark = pytest.mark.integration

BROKER = URL(AMQP_URL)
FTD_WORKER = Path(sys.executable).parent / "ftd-worker"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def start_proxy(pki: Pki, *, wrong_host: bool = False) -> TlsProxy:
    identity = pki.wrong_host if wrong_host else pki.server
    context = server_context(pki, identity, require_client_cert=True)
    return await TlsProxy(context, BROKER.host or "127.0.0.1", BROKER.port or 5672).start()


@pytest.fixture
async def proxy(pki: Pki) -> AsyncIterator[TlsProxy]:
    running = await start_proxy(pki)
    yield running
    await running.close()


@pytest.fixture
async def topology(prefix: str) -> str:
    """The queues and exchanges job-api declares, under this test's prefix (the `prefix` fixture
    deletes them afterwards): a worker only looks them up."""
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="gpu-worker-tls-test")
    await broker.connect()
    try:
        await declare_topology(await broker.channel(), broker.names, queue_specs(broker))
    finally:
        await broker.close()
    return prefix


def amqps_url(port: int) -> str:
    return str(BROKER.with_scheme("amqps").with_host("localhost").with_port(port))


def link_for(port: int, prefix: str, **tls: Path | None) -> BrokerLink:
    """The link `ftd-worker run --amqp-url amqps://... --ca-file ... --cert-file ... --key-file`
    builds."""
    settings = WorkerSettings(amqp_url=amqps_url(port), broker_prefix=prefix, **tls)
    # No claim is made here: any well-formed identity does.
    identity = WorkerIdentity.of(new_token(uuid.uuid4().hex).token, SHARED_POOL)
    return build_link(
        settings, [JobType.EMBEDDING], identity=identity, url=amqps_url(port), prefix=prefix
    )


async def refused(link: BrokerLink) -> BaseException:
    try:
        with pytest.raises((ConnectionError, OSError)) as caught:
            await asyncio.wait_for(link.connect(), 30)
        return caught.value
    finally:
        await link.close(flush_timeout=0)


async def test_with_the_ca_and_a_client_certificate_the_worker_uses_the_broker_over_amqps(
    pki: Pki, proxy: TlsProxy, topology: str
) -> None:
    link = link_for(
        proxy.port, topology, ca_file=pki.ca, cert_file=pki.client.cert, key_file=pki.client.key
    )
    await asyncio.wait_for(link.connect(), 30)
    queue_name = f"{topology}tls-check-{uuid.uuid4().hex[:8]}"
    try:
        assert link.connected
        assert proxy.sessions == [CLIENT_NAME]  # the proxy saw our client certificate
        channel = await link.connection.channel()
        queue = await channel.declare_queue(queue_name, durable=False)
        body = uuid.uuid4().bytes
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue_name)
        message = None
        for _ in range(50):
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                break
            await asyncio.sleep(0.1)
        assert message is not None
        assert message.body == body
    finally:
        with contextlib.suppress(Exception):
            cleanup = await link.connection.channel()
            await cleanup.queue_delete(queue_name, if_unused=False, if_empty=False)
        await link.close(flush_timeout=1)
    assert proxy.handshake_errors == []


async def test_without_the_ca_file_the_broker_certificate_is_refused(
    pki: Pki, proxy: TlsProxy, topology: str
) -> None:
    error = await refused(
        link_for(proxy.port, topology, cert_file=pki.client.cert, key_file=pki.client.key)
    )
    problem = certificate_problem(error)
    assert problem is not None
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)
    assert proxy.sessions == []


async def test_without_a_client_certificate_the_proxy_refuses_the_handshake(
    pki: Pki, proxy: TlsProxy, topology: str
) -> None:
    await refused(link_for(proxy.port, topology, ca_file=pki.ca))
    assert proxy.sessions == []
    assert any("PEER_DID_NOT_RETURN_A_CERTIFICATE" in e for e in proxy.handshake_errors)


async def test_a_server_certificate_for_another_host_is_refused(pki: Pki, topology: str) -> None:
    proxy = await start_proxy(pki, wrong_host=True)
    try:
        error = await refused(
            link_for(
                proxy.port,
                topology,
                ca_file=pki.ca,
                cert_file=pki.client.cert,
                key_file=pki.client.key,
            )
        )
    finally:
        await proxy.close()
    problem = certificate_problem(error)
    assert problem is not None
    assert "Hostname mismatch" in str(problem.verify_message)
    assert proxy.sessions == []


# --- the real CLI --------------------------------------------------------------------------------


def cli_args(port: int, prefix: str, tmp_path: Path, api_url: str, *tls: str) -> list[str]:
    return [
        str(FTD_WORKER),
        "run",
        "--api-url",
        api_url,
        "--amqp-url",
        amqps_url(port),
        *tls,
        "--broker-prefix",
        prefix,
        "--provider",
        "local",
        "--job-type",
        "embedding",
        "--work-dir",
        str(tmp_path / "work"),
        "--model-store-dir",
        str(tmp_path / "models"),
        "--no-console",
        "--json-logs",
    ]


async def wait_for_consumer(queue: str) -> bool:
    broker = Broker(AMQP_URL, BrokerNames(""), client_name="gpu-worker-tls-test")
    await broker.connect()
    try:
        for _ in range(100):
            if await consumer_count(await broker.channel(), queue) > 0:
                return True
            await asyncio.sleep(0.1)
        return False
    finally:
        await broker.close()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FTD_", "HF_", "WANDB_"))}
    return {**env, **extra}


def events(stderr: str) -> list[dict[str, Any]]:
    found = []
    for line in stderr.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                found.append(record)
    return found


async def test_ftd_worker_run_connects_over_amqps_with_the_tls_flags(
    pki: Pki, proxy: TlsProxy, topology: str, tmp_path: Path, job_api: httpx.AsyncClient
) -> None:
    token = (await enroll_over_http(job_api, f"tls-cli-{uuid.uuid4().hex[:6]}"))["token"]
    tls = ["--ca-file", str(pki.ca), "--cert-file", str(pki.client.cert)]
    tls += ["--key-file", str(pki.client.key)]
    process = await asyncio.create_subprocess_exec(
        *cli_args(proxy.port, topology, tmp_path, str(job_api.base_url), *tls),
        env=cli_env(FTD_WORKER_CONNECT_TIMEOUT="30", FTD_WORKER_TOKEN=token),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(60):
            while line := (await process.stderr.readline()).decode():
                lines.append(line)
                if '"broker.connected"' in line:
                    break
        assert any(e.get("event") == "broker.connected" for e in events("".join(lines))), lines
        # Connected through the proxy, with our client certificate, and consuming its queue.
        assert proxy.sessions == [CLIENT_NAME]
        names = BrokerNames(topology)
        queue = names.work_queue(JobType.EMBEDDING, GPUProvider.LOCAL)
        assert await wait_for_consumer(queue)
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest = (await process.stderr.read()).decode()
            code = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = events("".join(lines) + rest)
    assert code == 0, "".join(lines) + rest
    assert any(e.get("event") == "worker.stopped" for e in log)
    password = BROKER.password or "guest"
    assert f":{password}@" not in "".join(lines) + rest


async def test_ftd_worker_run_without_the_ca_stops_at_once_with_a_clear_error(
    pki: Pki, proxy: TlsProxy, topology: str, tmp_path: Path, job_api: httpx.AsyncClient
) -> None:
    token = (await enroll_over_http(job_api, f"tls-cli-{uuid.uuid4().hex[:6]}"))["token"]
    tls = ["--cert-file", str(pki.client.cert), "--key-file", str(pki.client.key)]
    process = await asyncio.create_subprocess_exec(
        *cli_args(proxy.port, topology, tmp_path, str(job_api.base_url), *tls),
        # Long enough for several retries of a transient failure: a refused certificate gets none.
        env=cli_env(FTD_WORKER_CONNECT_TIMEOUT="30", FTD_WORKER_TOKEN=token),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(90):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = err.decode()
    assert process.returncode == 1, stderr
    assert "the broker's TLS certificate was refused" in stderr
    assert "--ca-file" in stderr
    assert "Traceback" not in stderr
    log = events(stderr)
    assert [e["event"] for e in log if e.get("event", "").startswith("broker.connect")] == [
        "broker.connect_failed"
    ]
    assert proxy.sessions == []
