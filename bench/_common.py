"""Shared set-up for the benchmarks: a throw-away database + role and a RabbitMQ vhost, job-api
served by uvicorn in a subprocess, statistics and the printed report.

job-api is driven only from the outside (its CLI `job-api migrate` / `job-api serve`, its HTTP API,
and `workerlink.link.BrokerLink` for the worker's side), so the scripts keep working while its
insides change. Nothing here is imported by the services; each benchmark script is run on its own
with `uv run python bench/<name>.py [--quick]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
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
from urllib.parse import quote

import asyncpg
import httpx

from contracts.enums import GPUProvider, JobType
from contracts.routing import SHARED_POOL, BrokerNames
from servicekit.auth import mint_token
from servicekit.db import (
    asyncpg_dsn,
    bootstrap_service_database,
    drop_database,
    with_credentials,
)
from servicekit.logging import configure_logging
from workerlink.identity import WorkerIdentity
from workerlink.link import BrokerLink

ADMIN_DSN = os.environ.get("FTD_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# The broker's base URL (no vhost); each run adds its own vhost, deleted afterwards.
AMQP_BASE = os.environ.get("FTD_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
AMQP_USER = os.environ.get("FTD_BENCH_AMQP_USER", "guest")
FLOOR_SCHEMA = "floor"
BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def quiet_logging() -> None:
    """The benchmark process itself logs warnings only (the servers keep their own settings)."""
    configure_logging(json_logs=False, level="WARNING")


def raise_fd_limit() -> None:
    """Many sockets (SSE streams, wrk connections): lift the soft limit to the hard one; the
    servers started from here inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --------------------------------------------------------------------------- database + broker


@dataclass
class Stack:
    """One benchmark's own database, login role and RabbitMQ vhost."""

    database: str
    database_url: str
    vhost: str
    amqp_url: str
    role_password: str
    jwt_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    worker_key: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def names(self) -> BrokerNames:
        # A vhost of our own: no name prefix needed.
        return BrokerNames("")

    def server_env(self, **extra: str) -> dict[str, str]:
        """Environment of `job-api` commands: this stack's database, vhost and secrets."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_API_", "FTD_"))}
        env.update(
            {
                "JOB_API_DATABASE_URL": self.database_url,
                "JOB_API_DB_PASSWORD": self.role_password,
                "FTD_ADMIN_DSN": ADMIN_DSN,
                "FTD_DATABASE_NAME": self.database,
                "FTD_AMQP_URL": self.amqp_url,
                "FTD_BROKER_PREFIX": "",
                "FTD_JWT_SECRET": self.jwt_secret,
                "FINETUNE_WORKER_KEY": self.worker_key,
                "FTD_ENABLE_OFFLINE_MODELS": "true",
                "FTD_ENV": "development",
            }
        )
        env.update(extra)
        return env

    def token(self, sub: str = "bench-user", *, admin: bool = False) -> str:
        return mint_token(
            self.jwt_secret, sub, roles=["admin"] if admin else [], ttl_seconds=6 * 3600
        )

    def user_headers(self, sub: str = "bench-user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}


def queue_depths(vhost: str) -> dict[str, int]:
    """Ready messages of every queue in `vhost` (rabbitmqctl; about a second a call)."""
    out = _rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    depths: dict[str, int] = {}
    for line in out.splitlines():
        name, _, count = line.rpartition("\t")
        if name and count.strip().isdigit():
            depths[name] = int(count)
    return depths


def _rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise RuntimeError(
            "rabbitmqctl not found: the benchmarks create a RabbitMQ vhost of their own with it "
            "(run them on the broker's host, as a user allowed to run rabbitmqctl)"
        )
    proc = subprocess.run(
        [ctl, "-q", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {proc.stderr or proc.stdout}")
    return proc.stdout


def job_api_cli(*args: str) -> list[str]:
    """`job-api ARGS` from this virtual environment (what `uv run job-api` runs, without a `uv`
    parent process in between); falls back to `uv run` when the script is not found."""
    script = Path(sys.prefix) / "bin" / "job-api"
    base = [str(script)] if script.exists() else ["uv", "run", "job-api"]
    return [*base, *args]


def _migrate(stack: Stack) -> None:
    proc = subprocess.run(
        job_api_cli("migrate"),
        env=stack.server_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"job-api migrate failed:\n{proc.stdout}\n{proc.stderr}")


async def _create_schema(stack: Stack, schema: str) -> None:
    """A second schema owned by the benchmark's role (the floors' tables live there)."""
    conn = await asyncpg.connect(admin_dsn_for(stack.database))
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION "{stack.database}"')
    finally:
        await conn.close()


def admin_dsn_for(database: str) -> str:
    return asyncpg_dsn(ADMIN_DSN).rsplit("/", 1)[0] + "/" + database


@contextlib.asynccontextmanager
async def bench_stack(label: str) -> AsyncIterator[Stack]:
    """Create a database + role (migrated to head by `job-api migrate`) and a vhost; remove
    both afterwards, whatever happened."""
    tag = uuid.uuid4().hex[:10]
    name = f"ftd_bench_{label}_{tag}"
    password = secrets.token_hex(16)
    vhost = f"ftd_bench_{label}_{tag}"
    base = AMQP_BASE if AMQP_BASE.endswith("/") else AMQP_BASE + "/"
    stack = Stack(
        database=name,
        database_url=with_credentials(ADMIN_DSN, user=name, password=password, database=name),
        vhost=vhost,
        amqp_url=base + quote(vhost, safe=""),
        role_password=password,
    )
    vhost_made = False
    try:
        await asyncio.to_thread(_rabbitmqctl, "add_vhost", vhost)
        vhost_made = True
        await asyncio.to_thread(
            _rabbitmqctl, "set_permissions", "-p", vhost, AMQP_USER, ".*", ".*", ".*"
        )
        await bootstrap_service_database(
            ADMIN_DSN, database=name, role=name, password=password, schema="jobs"
        )
        await _create_schema(stack, FLOOR_SCHEMA)
        await asyncio.to_thread(_migrate, stack)
        yield stack
    finally:
        if vhost_made:
            try:
                await asyncio.to_thread(_rabbitmqctl, "delete_vhost", vhost)
            except Exception as exc:
                print(f"warning: deleting vhost {vhost!r} failed: {exc!r}", file=sys.stderr)
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
    return job_api_cli("serve", "--host", "127.0.0.1", "--port", str(port))


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

    def rss_bytes(self) -> int:
        """Resident set size of the server process (Linux /proc)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS in /proc status")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far (Linux /proc)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def wait_idle(
        self, *, below: float = 0.05, window: float = 0.3, timeout: float = 30
    ) -> None:
        """Wait until the server used less than `below` of a CPU over `window` seconds (its
        background work, e.g. a relay draining an outbox, is done), at most `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_seconds()
            await asyncio.sleep(window)
            if (self.cpu_seconds() - before) / window < below:
                return

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


def floor_app_server(stack: Stack, *, pool_size: int) -> Server:
    """bench/_floor_app.py on this stack's database (its own `floor` schema) and JWT secret."""
    port = free_port()
    argv = [
        sys.executable,
        str(BENCH_DIR / "_floor_app.py"),
        "--port",
        str(port),
        "--pool-size",
        str(pool_size),
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOB_API_", "FTD_"))}
    env.update({"FLOOR_DATABASE_URL": stack.database_url, "FLOOR_JWT_SECRET": stack.jwt_secret})
    return Server("floor-fastapi", argv, env=env, port=port)


def job_body(i: int = 0, owner: str = "bench-user") -> dict[str, Any]:
    """A job of `owner` (its output in the owner's own namespace: names belong to their owner)."""
    return {
        "job_type": "embedding",
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training_data_url": "https://data.example.com/train.csv",
        "output_model": f"{owner}/embedding-{i}",
        "gpu_provider": "local",
    }


def add_server_env_option(parser: argparse.ArgumentParser) -> None:
    """`--server-env KEY=VALUE` (repeatable): extra environment for `job-api serve`, e.g. a
    setting under test. Parsed into `args.server_env` (a dict)."""

    def pair(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
        return key, value

    parser.add_argument(
        "--server-env",
        type=pair,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for job-api (repeatable)",
    )


def server_env(args: argparse.Namespace) -> dict[str, str]:
    return dict(args.server_env)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


# --------------------------------------------------------------------------- statistics + report


class Phases:
    """Wall time of each phase of a run, printed as one line at the end (where the minutes go)."""

    def __init__(self) -> None:
        self._t = time.perf_counter()
        self._start = self._t
        self.parts: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.parts.append((name, now - self._t))
        self._t = now

    def line(self) -> str:
        total = time.perf_counter() - self._start
        inner = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.parts)
        return f"wall time {total:.1f} s ({inner})"


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
    p95: float
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
            p95=percentile(ms, 95),
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


async def bench_worker(
    stack: Stack, server: Server, job_types: Sequence[JobType] = (JobType.EMBEDDING,)
) -> BrokerLink:
    """The worker's own client (workerlink), enrolled through job-api's API as an operator enrolls
    a shared-pool worker, connected and consuming its queues."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        response = await client.post(
            "/api/workers",
            json={"name": "bench-worker", "pool": "shared"},
            headers={"Authorization": f"Bearer {stack.token('bench-operator', admin=True)}"},
        )
    response.raise_for_status()
    worker = BrokerLink(
        stack.amqp_url,
        stack.names,
        identity=WorkerIdentity.of(response.json()["data"]["token"], SHARED_POOL),
        provider=GPUProvider.LOCAL,
        job_types=list(job_types),
    )
    await worker.connect()
    await worker.resume_offers()
    return worker
