"""A private RabbitMQ node for tests that must stop and restart a broker.

Stopping the shared broker would break every other process using it, so a test that restarts a
broker starts its own node: its own node name, AMQP and distribution ports, data and log folders
(in a temporary directory), no plugins, started with `rabbitmq-server` as a subprocess and stopped
afterwards. Restarting it keeps its data folder, so durable queues and their messages survive.
"""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

# The server script itself: /usr/sbin/rabbitmq-server is a wrapper that may switch to the
# `rabbitmq` user, which could not use our temporary folders.
SERVER = next(
    (str(path) for path in (Path("/usr/lib/rabbitmq/bin/rabbitmq-server"),) if path.exists()),
    shutil.which("rabbitmq-server", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"),
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PrivateRabbit:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.name = f"ftd-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = _free_port()
        self.dist_port = _free_port()
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

    async def start(self, timeout: float = 90) -> None:
        assert SERVER is not None, "rabbitmq-server is not installed"
        assert self._process is None
        with (self.base / "server.out").open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                SERVER,
                env=self._env(),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole
            )
        await self._wait_accepting(timeout)

    async def _wait_accepting(self, timeout: float) -> None:
        """Until the AMQP port answers the protocol header (the node has finished booting)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self._process is not None
            if self._process.returncode is not None:
                raise RuntimeError(f"rabbitmq-server exited: see {self.base / 'server.out'}")
            with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 1
                )
                try:
                    writer.write(b"AMQP\x00\x00\x09\x01")
                    await writer.drain()
                    frame = await asyncio.wait_for(reader.readexactly(7), 2)
                    if frame[0] == 1:  # a method frame: connection.start
                        return
                finally:
                    writer.close()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the private RabbitMQ did not start within {timeout}s")
            await asyncio.sleep(0.25)

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

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def kill(self) -> None:
        """SIGKILL, as a crash or an OOM killer would: no connection is closed cleanly."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@contextlib.asynccontextmanager
async def private_rabbit() -> AsyncIterator[PrivateRabbit]:
    with tempfile.TemporaryDirectory(prefix="ftd-rabbit-") as tmp:
        node = PrivateRabbit(Path(tmp))
        await node.start()
        try:
            yield node
        finally:
            await node.stop()
