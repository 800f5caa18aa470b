"""Dependencies a test may stop, kill and start again: a RabbitMQ broker and a PostgreSQL.

Stopping the shared broker or database would break every other process using them, so a test
that must take one down gets its own, in one of two ways (tests/support/ftd_test_deps.py picks,
with `--deps` or FTD_TEST_DEPS):

- containers (testcontainers, on a Docker-compatible engine such as podman's socket): a RabbitMQ
  and a PostgreSQL container of the test's own, from the locally built images
  localhost/ftd-rabbitmq:3.10-management and localhost/ftd-postgres:15
  (deploy/compose/{rabbitmq,postgres}.Dockerfile). Stopped, killed and started for real; a
  container keeps its data across a stop, and its host port (bound when it is created).
- local: a private RabbitMQ node (`rabbitmq-server` as a subprocess: its own node name, ports and
  data folder, in a temporary directory), and the shared PostgreSQL behind a TCP proxy that cuts
  every connection and refuses new ones while "stopped" (the server itself stays up).

Both give the same interface: `KillableBroker` and `KillablePostgres`.
"""

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import asyncpg
from ftd_test_deps import POSTGRES_IMAGE, RABBITMQ_IMAGE
from messaging_testing import TcpProxy
from sqlalchemy.engine import make_url

from servicekit.db import (
    asyncpg_dsn,
    bootstrap_service_database,
    drop_database,
    with_credentials,
)
from servicekit.testing import via_port

ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
# Every container made here carries this label: `podman rm -f $(podman ps -aq --filter
# label=ftd-test-deps)` removes any left behind by a test run that was killed.
LABEL = "ftd-test-deps"

Migrate = Callable[[str], None]


class KillableBroker(Protocol):
    """A RabbitMQ node of the test's own; guest/guest at `url`, default vhost."""

    url: str

    async def start(self) -> None:
        """Start it (again) and wait until it accepts AMQP connections."""

    async def stop(self) -> None:
        """A graceful shutdown: clients are told the connection is closing."""

    async def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would: no connection is closed cleanly."""

    async def restart(self) -> None:
        """`stop` then `start`: durable queues and their persistent messages survive."""


class KillablePostgres(Protocol):
    """A PostgreSQL a test may take away from its clients.

    `admin_dsn` creates and drops databases (reachable only while it is up); a client whose
    connections an outage must cut connects to `client_url(dsn)`.
    """

    admin_dsn: str

    def client_url(self, dsn: str) -> str:
        """`dsn` (a URL for this server) as a client the outage reaches must use it."""

    def database(
        self, *, schema: str, migrate: Migrate
    ) -> contextlib.AbstractAsyncContextManager[str]:
        """A database and login role of their own owning `schema`, migrated to head."""

    async def start(self) -> None:
        """Reachable again (started, if it was stopped), and accepting connections."""

    async def stop(self) -> None:
        """Unreachable: shut down gracefully (containers), or every connection cut (local)."""

    async def kill(self) -> None:
        """Unreachable at once: every connection dropped without a word (SIGKILL, or cut)."""

    async def restart(self) -> None:
        """`stop` then `start`: its databases and their rows survive."""


# --------------------------------------------------------------------------------------- helpers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


Liveness = Callable[[], Awaitable[str | None]]


async def _alive() -> str | None:
    return None


async def wait_for_amqp(port: int, timeout: float, alive: Liveness = _alive) -> None:
    """Until 127.0.0.1:`port` answers the AMQP protocol header with connection.start (the node
    has finished booting). `alive` names why waiting is pointless (the server exited), if so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if (gone := await alive()) is not None:
            raise RuntimeError(gone)
        with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1)
            try:
                writer.write(b"AMQP\x00\x00\x09\x01")
                await writer.drain()
                frame = await asyncio.wait_for(reader.readexactly(7), 2)
                if frame[0] == 1:  # a method frame: connection.start
                    return
            finally:
                writer.close()
        if loop.time() > deadline:
            raise TimeoutError(f"RabbitMQ on port {port} did not start within {timeout}s")
        await asyncio.sleep(0.25)


async def wait_for_postgres(dsn: str, timeout: float, alive: Liveness = _alive) -> None:
    """Until `dsn` accepts a login and answers a query."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: BaseException | None = None
    while True:
        if (gone := await alive()) is not None:
            raise RuntimeError(gone)
        try:
            conn = await asyncpg.connect(asyncpg_dsn(dsn), timeout=2)
            try:
                await conn.fetchval("SELECT 1")
                return
            finally:
                await conn.close()
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            last = exc
        if loop.time() > deadline:
            raise TimeoutError(f"PostgreSQL did not answer within {timeout}s: {last!r}")
        await asyncio.sleep(0.25)


@contextlib.asynccontextmanager
async def migrated_database(admin_dsn: str, *, schema: str, migrate: Migrate) -> AsyncIterator[str]:
    """A database and login role of their own owning `schema` on `admin_dsn`'s server, migrated
    to head; yields the role's URL and drops both afterwards."""
    name = f"ftd_test_{schema}_{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    await bootstrap_service_database(
        admin_dsn, database=name, role=name, password=password, schema=schema
    )
    url = with_credentials(admin_dsn, user=name, password=password, database=name)
    try:
        await asyncio.to_thread(migrate, url)
        yield url
    finally:
        await drop_database(admin_dsn, name, roles=[name])


# --------------------------------------------------------------------------------- local: broker

# The server script itself: /usr/sbin/rabbitmq-server is a wrapper that may switch to the
# `rabbitmq` user, which could not use our temporary folders.
RABBITMQ_SERVER = next(
    (str(path) for path in (Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),) if path.exists()),
    shutil.which("rabbitmq-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"),
)


class PrivateRabbit:
    """A RabbitMQ node as a subprocess: its own node name, AMQP and distribution ports, data and
    log folders (under `base`), no plugins. Restarting it keeps its data folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"ftd-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._process: asyncio.subprocess.Process | None = None
        (base / "plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text("")

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RABBITMQ_")}
        env.update(
            HOME=str(self.base),  # its own Erlang cookie
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.base / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.base / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.base / "plugins"),
            RABBITMQ_CONFIG_FILE=str(self.base / "rabbitmq"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(self.base / "advanced.config"),
            RABBITMQ_CONF_ENV_FILE=str(self.base / "rabbitmq-env.conf"),
        )
        return env

    async def _exited(self) -> str | None:
        assert self._process is not None
        if self._process.returncode is None:
            return None
        return f"rabbitmq-server exited: see {self.base / 'server.out'}"

    async def start(self, timeout: float = 90) -> None:
        assert RABBITMQ_SERVER is not None, "rabbitmq-server is not installed"
        assert self._process is None
        with (self.base / "server.out").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                RABBITMQ_SERVER,
                env=self._env(),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        await wait_for_amqp(self.port, timeout, self._exited)

    async def stop(self, timeout: float = 60) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()

    async def kill(self) -> None:
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    with tempfile.TemporaryDirectory(prefix="ftd-rabbit-") as tmp:
        node = PrivateRabbit(Path(tmp))
        await node.start()
        try:
            yield node
        finally:
            await node.stop()


# ----------------------------------------------------------------------------- local: PostgreSQL


class ProxiedPostgres:
    """The shared PostgreSQL (`admin_dsn`'s server) behind a TCP proxy: "stopped" or "killed",
    the proxy drops every connection through it and refuses new ones; the server stays up, so
    `admin_dsn` (direct) keeps working throughout."""

    def __init__(self, proxy: TcpProxy, admin_dsn: str) -> None:
        self._proxy = proxy
        self.admin_dsn = admin_dsn

    def client_url(self, dsn: str) -> str:
        return via_port(dsn, self._proxy.port)

    def database(
        self, *, schema: str, migrate: Migrate
    ) -> contextlib.AbstractAsyncContextManager[str]:
        return migrated_database(self.admin_dsn, schema=schema, migrate=migrate)

    async def start(self) -> None:
        self._proxy.restore()

    async def stop(self) -> None:
        self._proxy.cut()

    async def kill(self) -> None:
        self._proxy.cut()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@contextlib.asynccontextmanager
async def proxied_postgres(admin_dsn: str = ADMIN_DSN) -> AsyncIterator[ProxiedPostgres]:
    url = make_url(admin_dsn)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        yield ProxiedPostgres(proxy, admin_dsn)


# ------------------------------------------------------------------------------------ containers


class _Container:
    """One testcontainers container whose lifecycle the test drives: created and started once,
    then stopped, killed and started in place (never removed until the end, so it keeps its
    filesystem, volumes and host port)."""

    def __init__(
        self,
        image: str,
        port: int,
        env: dict[str, str],
        *,
        command: list[str] | None = None,
        user: str | None = None,
    ) -> None:
        self.host_port = free_port()
        self._image, self._port, self._env = image, port, env
        self._command, self._user = command, user
        self._container: Any = None  # testcontainers' DockerContainer, once created

    def _wrapped(self) -> Any:
        return self._container.get_wrapped_container()

    def _create(self) -> None:
        from testcontainers.core.container import DockerContainer

        container = DockerContainer(self._image, env=self._env)
        container.with_bind_ports(self._port, self.host_port)
        container.with_name(f"ftd-test-{uuid.uuid4().hex[:10]}")
        if self._command is not None:
            container.with_command(self._command)
        kwargs: dict[str, Any] = {"labels": {LABEL: "1"}}
        if self._user is not None:
            kwargs["user"] = self._user
        container.with_kwargs(**kwargs)
        self._container = container
        container.start()

    async def create(self) -> None:
        await asyncio.to_thread(self._create)

    async def exited(self) -> str | None:
        wrapped = self._wrapped()
        await asyncio.to_thread(wrapped.reload)
        if wrapped.status in ("running", "created", "restarting"):
            return None
        logs = await asyncio.to_thread(wrapped.logs, tail=40)
        return f"container {wrapped.name} is {wrapped.status}:\n{logs.decode(errors='replace')}"

    async def start(self) -> None:
        wrapped = self._wrapped()

        def start_unless_running() -> None:
            wrapped.reload()
            if wrapped.status != "running":
                wrapped.start()

        await asyncio.to_thread(start_unless_running)

    async def stop(self, timeout: int = 60) -> None:
        await asyncio.to_thread(self._wrapped().stop, timeout=timeout)

    async def kill(self) -> None:
        wrapped = self._wrapped()

        def kill_and_wait() -> None:
            wrapped.reload()
            if wrapped.status == "running":
                wrapped.kill(signal="SIGKILL")
            wrapped.wait()

        await asyncio.to_thread(kill_and_wait)

    async def remove(self) -> None:
        if self._container is not None:
            await asyncio.to_thread(self._container.stop, force=True, delete_volume=True)


class _ContainerService:
    """What a service in a container of its own does with its container: create and start it
    (each waits until `_ready`), stop, kill, restart (its data kept), remove."""

    _box: _Container

    async def _ready(self, timeout: float) -> None:
        raise NotImplementedError

    async def create(self, timeout: float = 120) -> None:
        await self._box.create()
        await self._ready(timeout)

    async def start(self, timeout: float = 90) -> None:
        await self._box.start()
        await self._ready(timeout)

    async def stop(self) -> None:
        await self._box.stop()

    async def kill(self) -> None:
        await self._box.kill()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def remove(self) -> None:
        await self._box.remove()


class ContainerBroker(_ContainerService):
    """RabbitMQ in a container of its own (guest may log in from outside it; no plugins)."""

    def __init__(self) -> None:
        self._box = _Container(
            RABBITMQ_IMAGE,
            5672,
            {
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-rabbit loopback_users []",
                "RABBITMQ_ENABLED_PLUGINS_FILE": "/tmp/ftd-test-plugins",  # noqa: S108
            },
            # As user rabbitmq the server script itself is PID 1, so a stop's SIGTERM reaches it.
            user="rabbitmq",
            command=[
                "sh",
                "-c",
                "echo '[].' >/tmp/ftd-test-plugins && exec /usr/lib/rabbitmq/bin/rabbitmq-server",
            ],
        )
        self.port = self._box.host_port
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def _ready(self, timeout: float) -> None:
        await wait_for_amqp(self.port, timeout, self._box.exited)


class ContainerPostgres(_ContainerService):
    """PostgreSQL 15 in a container of its own; `admin_dsn` logs in as postgres with a password
    made for it."""

    def __init__(self) -> None:
        password = secrets.token_hex(16)
        self._box = _Container(POSTGRES_IMAGE, 5432, {"POSTGRES_PASSWORD": password})
        self.admin_dsn = (
            f"postgresql://postgres:{password}@127.0.0.1:{self._box.host_port}/postgres"
        )

    def client_url(self, dsn: str) -> str:
        return dsn

    def database(
        self, *, schema: str, migrate: Migrate
    ) -> contextlib.AbstractAsyncContextManager[str]:
        return migrated_database(self.admin_dsn, schema=schema, migrate=migrate)

    async def _ready(self, timeout: float) -> None:
        await wait_for_postgres(self.admin_dsn, timeout, self._box.exited)


@contextlib.asynccontextmanager
async def container_broker() -> AsyncIterator[ContainerBroker]:
    node = ContainerBroker()
    try:
        await node.create()
        yield node
    finally:
        await node.remove()


@contextlib.asynccontextmanager
async def container_postgres() -> AsyncIterator[ContainerPostgres]:
    server = ContainerPostgres()
    try:
        await server.create()
        yield server
    finally:
        await server.remove()
