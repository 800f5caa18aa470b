"""Runs the browser tests against job-api alone (no gateway, data-service, registry or worker yet).

It creates its own database and broker namespace, starts job-api on a free port and the built UI
(`vite preview`, proxying /api to it) on another, mints a token, and runs e2e/flows.test.mjs with
E2E_WORKER=http (the test plays the worker over the brief's HTTP worker API) and
E2E_ALLOW_MISSING=data,registry. Everything it made is removed afterwards.

    uv run python frontend/e2e/jobapi_stack.py            # from the repository root
    uv run python frontend/e2e/jobapi_stack.py CMD...     # CMD instead, with E2E_* set
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from contracts.routing import BrokerNames
from job_api.entrypoints.cli import migrate
from job_api.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.auth import mint_token
from servicekit.db import bootstrap_service_database, drop_database, with_credentials

FRONTEND = Path(__file__).resolve().parents[1]
ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SystemExit(f"{name} is not installed")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):  # noqa: S310 - local
            return
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@contextlib.contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own command lines
            args,
            cwd=FRONTEND,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


async def drop_broker_namespace(prefix: str) -> None:
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="ui-e2e-teardown")
    await broker.connect()
    try:
        channel = await broker.channel()
        specs = queue_specs(broker)
        await delete_topology(
            channel,
            broker.names,
            [s.name for s in specs],
            [s.exchange for s in specs if s.exchange],
        )
    finally:
        await broker.close()


def main() -> int:
    tag = secrets.token_hex(4)
    name = f"ftd_ui_e2e_{tag}"
    password = secrets.token_hex(16)
    prefix = f"uie2e{tag}."
    jwt_secret = secrets.token_urlsafe(32)
    worker_key = secrets.token_urlsafe(32)
    out = Path(os.environ.get("E2E_OUT", FRONTEND / "e2e-output")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    asyncio.run(
        bootstrap_service_database(
            ADMIN_DSN, database=name, role=name, password=password, schema="jobs"
        )
    )
    try:
        url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
        migrate(url)
        api_port, ui_port = free_port(), free_port()
        env = {
            **os.environ,
            "FTD_ENV": "development",
            "JOB_API_DATABASE_URL": url,
            "FTD_AMQP_URL": AMQP_URL,
            "FTD_BROKER_PREFIX": prefix,
            "FTD_JWT_SECRET": jwt_secret,
            "FINETUNE_WORKER_KEY": worker_key,
            "FTD_ENABLE_OFFLINE_MODELS": "true",
            "JOB_API_PRESENCE_INTERVAL": "1",
            "JOB_API_DB_POOL_SIZE": "5",
        }
        token = mint_token(jwt_secret, "e2e-user", ttl_seconds=3600)
        job_api = str(Path(sys.executable).parent / "job-api")
        if os.environ.get("E2E_BUILD", "1") == "1":
            subprocess.run([tool("npm"), "run", "build"], cwd=FRONTEND, check=True)  # noqa: S603
        with (
            process(
                [job_api, "serve", "--port", str(api_port)], env, out / "job-api.log"
            ) as api_proc,
            process(
                [
                    str(FRONTEND / "node_modules/.bin/vite"),
                    "preview",
                    "--port",
                    str(ui_port),
                    "--strictPort",
                ],
                {**env, "FTD_API_URL": f"http://127.0.0.1:{api_port}"},
                out / "ui-preview.log",
            ) as ui_proc,
        ):
            wait_http(f"http://127.0.0.1:{api_port}/healthz", api_proc)
            wait_http(f"http://127.0.0.1:{ui_port}/", ui_proc)
            e2e_env = {
                **os.environ,
                "E2E_BASE_URL": f"http://127.0.0.1:{ui_port}",
                "E2E_TOKEN": token,
                "E2E_WORKER": "http",
                "E2E_WORKER_KEY": worker_key,
                "E2E_ALLOW_MISSING": os.environ.get("E2E_ALLOW_MISSING", "data,registry"),
                "E2E_OUT": str(out),
            }
            # Any arguments: run them (e.g. a shell) in that environment instead of the tests.
            command = sys.argv[1:] or [
                tool("node"),
                "--test",
                "--test-reporter=spec",
                "e2e/flows.test.mjs",
            ]
            result = subprocess.run(command, cwd=FRONTEND, env=e2e_env, check=False)  # noqa: S603
            return result.returncode
    finally:
        asyncio.run(drop_database(ADMIN_DSN, name, roles=[name]))
        asyncio.run(drop_broker_namespace(prefix))


if __name__ == "__main__":
    sys.exit(main())
