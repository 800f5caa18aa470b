"""Helpers shared by data-service tests (importable: pytest's `pythonpath` lists this folder)."""

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from servicekit.auth import mint_token

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
JWT_SECRET = "test-jwt-secret-0123456789abcdef"
TICKET_SECRET = "test-ticket-secret-0123456789abcdef"
TABLES = ("data.datasets", "data.dataset_jobs", "data.outbox", "data.inbox")


def user_headers(sub: str = "alice", *, admin: bool = False) -> dict[str, str]:
    token = mint_token(JWT_SECRET, sub, roles=["admin"] if admin else [], ttl_seconds=3600)
    return {"Authorization": f"Bearer {token}"}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` behind a real uvicorn on an ephemeral port (lifespan included); yields its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):
                await task
        sock.close()


def csv_bytes(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def classifier_csv(n: int = 12) -> bytes:
    return csv_bytes(
        "text,label", [f"sentence number {i},{'pos' if i % 2 else 'neg'}" for i in range(n)]
    )


def files(data: bytes, filename: str = "train.csv", **fields: Any) -> dict[str, Any]:
    return {"files": {"file": (filename, data, "text/csv")}, "data": fields}


async def publish_event(amqp_url: str, prefix: str, payload: Any) -> None:
    """Publish a job-api event on the test namespace's events exchange (as job-api's relay would)."""
    from contracts.events import Envelope
    from contracts.routing import BrokerNames
    from messaging.broker import Broker

    broker = Broker(amqp_url, BrokerNames(prefix), client_name="test-publisher")
    await broker.connect()
    try:
        await broker.publish(Envelope.wrap(payload, source="job-api"), payload.routing_key())
    finally:
        await broker.close()


async def eventually(check: Any, *, timeout: float = 15, interval: float = 0.05) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result: {result!r})")
        await asyncio.sleep(interval)


def stored_files(root: Path, pattern: str = "*") -> list[Path]:
    """Files under a storage folder (a plain function: async tests call it between awaits)."""
    return [p for p in root.rglob(pattern) if p.is_file()]
