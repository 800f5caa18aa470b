"""Shared set-up for the benchmarks: a throw-away database + role + broker namespace, a job-api
served by uvicorn in a subprocess, statistics and the printed report.

Nothing here is imported by the services; each benchmark script is run on its own with
`uv run python bench/<name>.py [--quick]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contracts.routing import JOB_API, BrokerNames
from job_api.config import Settings
from job_api.entrypoints.cli import migrate
from job_api.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.auth import mint_token
from servicekit.db import bootstrap_service_database, drop_database, with_credentials
from servicekit.logging import configure_logging

ADMIN_DSN = os.environ.get("FTD_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def quiet_logging() -> None:
    """The benchmark process itself logs warnings only (the servers keep their own settings)."""
    configure_logging(json_logs=False, level="WARNING")


# --------------------------------------------------------------------------- database + broker


@dataclass
class Stack:
    """One benchmark's own database, login role and broker prefix."""

    database: str
    database_url: str
    prefix: str
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    worker_key: str = field(default_factory=lambda: secrets.token_hex(32))
    # Queues a baseline declared under the prefix; deleted with the topology.
    extra_queues: list[str] = field(default_factory=list)

    @property
    def names(self) -> BrokerNames:
        return BrokerNames(self.prefix)

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "development",
            "database_url": self.database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": self.prefix,
            "jwt_secret": self.jwt_secret,
            "worker_key": self.worker_key,
            "enable_offline_models": True,
        }
        values.update(overrides)
        return Settings(**values)

    def server_env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_API_", "FTD_"))}
        env.update(
            {
                "JOB_API_DATABASE_URL": self.database_url,
                "FTD_AMQP_URL": AMQP_URL,
                "FTD_BROKER_PREFIX": self.prefix,
                "FTD_JWT_SECRET": self.jwt_secret,
                "FINETUNE_WORKER_KEY": self.worker_key,
                "FTD_ENABLE_OFFLINE_MODELS": "true",
                "FTD_ENV": "development",
            }
        )
        env.update(extra)
        return env

    def user_headers(self, sub: str = "bench-user") -> dict[str, str]:
        token = mint_token(self.jwt_secret, sub, ttl_seconds=6 * 3600)
        return {"Authorization": f"Bearer {token}"}


async def _delete_broker_namespace(stack: Stack) -> None:
    broker = Broker(AMQP_URL, stack.names, client_name="bench-teardown")
    await broker.connect()
    try:
        names = broker.names
        queues = [s.name for s in queue_specs(broker)] + stack.extra_queues
        # A direct exchange in front of the RPC queue, where the topology has one.
        rpc_exchange = getattr(names, "rpc_exchange", None)
        exchanges = [rpc_exchange(JOB_API)] if rpc_exchange is not None else []
        try:
            channel = await broker.channel()
            await delete_topology(channel, names, queues)
            for exchange in exchanges:
                await channel.exchange_delete(exchange, if_unused=False)
        except Exception:
            # One refusal closes the channel: go on item by item, each on a fresh channel.
            for queue in (*queues, names.dead_letter_queue):
                with contextlib.suppress(Exception):
                    await (await broker.channel()).queue_delete(queue, if_unused=False)
            for exchange in (*exchanges, names.events_exchange, names.dead_letter_exchange):
                with contextlib.suppress(Exception):
                    await (await broker.channel()).exchange_delete(exchange, if_unused=False)
    finally:
        await broker.close()


@contextlib.asynccontextmanager
async def bench_stack(label: str) -> AsyncIterator[Stack]:
    """Create a database + role (migrated to head) and a broker prefix; remove both afterwards."""
    tag = uuid.uuid4().hex[:10]
    name = f"ftd_bench_{label}_{tag}"
    password = secrets.token_hex(16)
    stack = Stack(
        database=name,
        database_url=with_credentials(ADMIN_DSN, user=name, password=password, database=name),
        prefix=f"bench{tag}.",
    )
    try:
        await bootstrap_service_database(
            ADMIN_DSN, database=name, role=name, password=password, schema="jobs"
        )
        await asyncio.to_thread(migrate, stack.database_url)
        yield stack
    finally:
        try:
            await _delete_broker_namespace(stack)
        except Exception as exc:
            print(f"warning: broker clean-up of {stack.prefix!r} failed: {exc!r}", file=sys.stderr)
        try:
            await drop_database(ADMIN_DSN, name, roles=[name])
        except Exception as exc:
            print(f"warning: dropping database {name} failed: {exc!r}", file=sys.stderr)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job_api_command(port: int) -> list[str]:
    """`job-api serve` from this virtual environment (what `uv run job-api serve` runs, without a
    `uv` parent process in between); falls back to `uv run` when the script is not found."""
    script = Path(sys.prefix) / "bin" / "job-api"
    base = [str(script)] if script.exists() else ["uv", "run", "job-api"]
    return [*base, "serve", "--host", "127.0.0.1", "--port", str(port)]


class Server:
    """A uvicorn server in a subprocess; stdout/stderr go to a log file (shown on failure)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: dict[str, str],
        port: int,
        ready_path: str = "/healthz",
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = env
        self.port = port
        self.ready_path = ready_path
        self.base_url = f"http://127.0.0.1:{port}"
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in stop()
            prefix=f"bench-{name}-", suffix=".log", delete=False
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log_tail(self, chars: int = 4000) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-chars:]

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    async def start(self, timeout: float = 90) -> None:
        self.proc = self._spawn()
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.ready_path)).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown (runs the lifespan exit)
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def job_api_server(stack: Stack, **extra_env: str) -> Server:
    port = free_port()
    return Server(
        "job-api",
        job_api_command(port),
        env=stack.server_env(**extra_env),
        port=port,
        ready_path="/readyz",
    )


def bare_app_server() -> Server:
    port = free_port()
    argv = [sys.executable, str(BENCH_DIR / "_bare_app.py"), "--port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_API_", "FTD_"))}
    return Server("bare-fastapi", argv, env=env, port=port)


def job_body(i: int = 0) -> dict[str, Any]:
    return {
        "job_type": "embedding",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training_data_url": "https://data.example.com/train.csv",
        "output_model": f"bench/embedding-{i}",
        "gpu_provider": "local",
    }


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


# --------------------------------------------------------------------------- statistics + report


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class LatencySummary:
    n: int
    p50: float
    p90: float
    p99: float
    mean: float
    max: float

    @classmethod
    def of(cls, samples_s: Sequence[float]) -> LatencySummary:
        ms = sorted(s * 1000 for s in samples_s)
        return cls(
            n=len(ms),
            p50=percentile(ms, 50),
            p90=percentile(ms, 90),
            p99=percentile(ms, 99),
            mean=sum(ms) / len(ms),
            max=ms[-1],
        )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.2f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    text = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    )
    out = [line, "-" * len(line)]
    for r in text:
        out.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def machine_note() -> str:
    load = os.getloadavg()
    return (
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
        f"python {sys.version.split()[0]}"
    )
