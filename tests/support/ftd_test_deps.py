"""pytest plugin (`-p ftd_test_deps`, in pyproject's addopts): where the tests that stop, kill and
restart a dependency get it from (tests/support/disposable.py).

    pytest --deps=auto|containers|local        (or FTD_TEST_DEPS=...; the option wins)

- containers: a RabbitMQ and a PostgreSQL container of each test's own (testcontainers), on the
  Docker-compatible engine at DOCKER_HOST, else podman's socket unix:///run/podman/podman.sock,
  else Docker's unix:///var/run/docker.sock. The images are built locally, never pulled
  (`scripts/compose-test.sh build` builds them, among others), and testcontainers' reaper
  container (Ryuk), an image from a registry, is off unless TESTCONTAINERS_RYUK_DISABLED says
  otherwise. With podman, the socket is served by
      podman system service --time=0 unix:///run/podman/podman.sock &
- local: a private `rabbitmq-server` node, and the shared PostgreSQL behind a TCP proxy.
- auto (the default): containers when an engine answers and has both images, local otherwise.

The choice and its reason are the first lines of pytest's header. With pytest-xdist the main
process chooses once and its workers take that choice.
"""

import contextlib
import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest

if TYPE_CHECKING:
    from disposable import KillableBroker, KillablePostgres

ENV = "FTD_TEST_DEPS"
MODES = ("auto", "containers", "local")
PODMAN_SOCKET = "unix:///run/podman/podman.sock"
DOCKER_SOCKET = "unix:///var/run/docker.sock"
RABBITMQ_IMAGE = "localhost/ftd-rabbitmq:3.10-management"
POSTGRES_IMAGE = "localhost/ftd-postgres:15"
IMAGES = (RABBITMQ_IMAGE, POSTGRES_IMAGE)
_WORKER_KEY = "ftd_test_deps"


@dataclasses.dataclass(frozen=True)
class DepsChoice:
    mode: Literal["containers", "local"]
    reason: str
    docker_host: str | None = None


_CHOICE = pytest.StashKey[DepsChoice]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("ftd").addoption(
        "--deps",
        choices=MODES,
        default=None,
        help=(
            "where tests that stop a broker or a database get it: containers (testcontainers), "
            f"local (a private rabbitmq-server node, a proxied PostgreSQL) or auto; ${ENV} "
            "when not given, else auto"
        ),
    )


def _engine_hosts() -> list[str]:
    if host := os.environ.get("DOCKER_HOST"):
        return [host]
    return [h for h in (PODMAN_SOCKET, DOCKER_SOCKET) if Path(h.removeprefix("unix://")).exists()]


def probe_engine() -> tuple[str | None, str]:
    """(the engine's address, what was found) where an engine answers and holds both images;
    (None, why not) otherwise."""
    hosts = _engine_hosts()
    if not hosts:
        return (
            None,
            f"no container engine (DOCKER_HOST unset, no {PODMAN_SOCKET}, no {DOCKER_SOCKET})",
        )
    import docker
    import requests

    problems = []
    for host in hosts:
        try:
            client = docker.DockerClient(base_url=host, timeout=5)
        except docker.errors.DockerException as exc:  # it asks the engine's API version
            problems.append(f"no engine answers at {host} ({type(exc).__name__})")
            continue
        try:
            version: dict[str, Any] = client.version()
            missing = []
            for image in IMAGES:
                try:
                    client.images.get(image)
                except docker.errors.NotFound:  # ImageNotFound, or a 404 worded otherwise
                    missing.append(image)
        except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
            problems.append(f"no engine answers at {host} ({type(exc).__name__})")
            continue
        finally:
            client.close()
        components = [c.get("Name", "") for c in version.get("Components") or []]
        name = components[0] if components else "engine"  # "Podman Engine", "Engine" (Docker)
        engine = f"{name} {version.get('Version', '?')} at {host}"
        if missing:
            problems.append(f"{engine} has no image {', '.join(missing)}")
            continue
        return host, f"{engine} with {', '.join(IMAGES)}"
    return None, "; ".join(problems)


def choose(requested: str) -> DepsChoice:
    if requested == "local":
        return DepsChoice("local", "asked for")
    host, found = probe_engine()
    if host is None:
        if requested == "containers":
            raise pytest.UsageError(f"--deps=containers: {found}")
        return DepsChoice("local", f"auto: {found}")
    return DepsChoice("containers", f"{requested}: {found}", host)


def pytest_configure(config: pytest.Config) -> None:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and _WORKER_KEY in workerinput:
        choice = DepsChoice(**json.loads(workerinput[_WORKER_KEY]))
    else:
        requested = config.getoption("deps") or os.environ.get(ENV) or "auto"
        if requested not in MODES:
            raise pytest.UsageError(f"{ENV}={requested!r}: expected one of {', '.join(MODES)}")
        choice = choose(requested)
    if choice.mode == "containers":
        assert choice.docker_host is not None
        # testcontainers reads both from the environment.
        os.environ["DOCKER_HOST"] = choice.docker_host
        os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    config.stash[_CHOICE] = choice


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: each worker takes the main process's choice."""
    choice = node.config.stash[_CHOICE]
    node.workerinput[_WORKER_KEY] = json.dumps(dataclasses.asdict(choice))


def pytest_report_header(config: pytest.Config) -> str:
    choice = config.stash[_CHOICE]
    return f"killable dependencies (--deps, ${ENV}): {choice.mode} ({choice.reason})"


BrokerFactory = Callable[[], contextlib.AbstractAsyncContextManager["KillableBroker"]]
PostgresFactory = Callable[[], contextlib.AbstractAsyncContextManager["KillablePostgres"]]


@pytest.fixture(scope="session")
def test_deps(pytestconfig: pytest.Config) -> DepsChoice:
    return pytestconfig.stash[_CHOICE]


@pytest.fixture(scope="session")
def killable_broker(test_deps: DepsChoice) -> BrokerFactory:
    """`async with killable_broker() as node:` a RabbitMQ node of the test's own, started;
    removed afterwards."""
    import disposable

    if test_deps.mode == "containers":
        return disposable.container_broker
    return disposable.private_rabbit


@pytest.fixture(scope="session")
def killable_postgres(test_deps: DepsChoice) -> PostgresFactory:
    """`async with killable_postgres() as server:` a PostgreSQL the test may take away from its
    clients (`server.client_url(dsn)`), up; removed afterwards."""
    import disposable

    if test_deps.mode == "containers":
        return disposable.container_postgres
    return disposable.proxied_postgres
