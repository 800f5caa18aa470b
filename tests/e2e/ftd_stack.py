"""The whole platform as `make dev` runs it, on ephemeral ports and in its own namespaces, for the
end-to-end tests: job-api, data-service, registry-service, model-server and webhook-service
(`<service> serve`; model-server serves from the stack's model store, which the worker writes;
webhook-service may deliver to this machine's loopback over http), the nginx gateway
(scripts/gateway.sh) in front of them, a CPU worker (`ftd-worker run --provider local`) and, when
asked, the built UI behind the gateway at `/`.

Everything it makes is its own and removed afterwards: one database and login role per service
(`ftd_stack_<tag>_<service>`), a broker name prefix (`stk<tag>.`), a scratch folder (datasets,
model store, worker work dir, logs). Each process's output goes to `<root>/logs/<name>.log`.

    with full_stack(tmp_path) as stack:
        httpx.get(stack.base_url + "/api/finetune/jobs", headers=stack.headers("alice"))

Run as a script, it starts the stack with the UI and runs a command in an environment that
points at it (E2E_BASE_URL, E2E_TOKEN, ...): `make ui-e2e` runs the browser tests this way.

    uv run python tests/e2e/ftd_stack.py [--keep-logs DIR] [CMD...]
"""

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"
BIN = Path(sys.executable).parent
ADMIN_DSN = os.environ.get("FTD_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
# RabbitMQ's management API (scripts/ensure-services.sh enables it): workers' broker users.
MANAGEMENT_URL = os.environ.get("FTD_TEST_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
SERVICES = ("job-api", "data-service", "registry-service", "model-server", "webhook-service")
SCHEMAS = {
    "job-api": "jobs",
    "data-service": "data",
    "registry-service": "registry",
    "model-server": "model_server",
    "webhook-service": "webhooks",
}
DB_ENV = {
    "job-api": "JOB_API_DATABASE_URL",
    "data-service": "DATA_SERVICE_DATABASE_URL",
    "registry-service": "REGISTRY_SERVICE_DATABASE_URL",
    "model-server": "MODEL_SERVER_DATABASE_URL",
    "webhook-service": "WEBHOOK_SERVICE_DATABASE_URL",
}
# What a CPU box runs by default; llm_lora on CPU only with the tiny Llama (--force-job-types).
CPU_JOB_TYPES = ("embedding", "classifier")


@dataclass
class Stack:
    base_url: str
    jwt_secret: str
    worker_key: str
    root: Path
    model_store: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    start_process: Callable[[str, list[str], dict[str, str]], None] | None = None
    worker_args: list[str] = field(default_factory=list)
    # The CPU worker's enrolled credential (its token is in its environment, never its argv).
    worker_env: dict[str, str] = field(default_factory=dict)
    # How each process was started (argv, environment added): what `restart` runs again.
    commands: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=dict)
    # A service replica's readiness URL, by process name (job-api, job-api-2, ...).
    ready_urls: dict[str, str] = field(default_factory=dict)
    amqp_url: str = AMQP_URL
    management_url: str = MANAGEMENT_URL
    broker_prefix: str = ""

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Signal process `name`'s group (SIGKILL: no hand-back, no last word) and wait for it."""
        proc = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        return proc.wait(timeout=60)

    def restart(self, name: str, timeout: float = 180, **env: str) -> None:
        """Start process `name` again as it was first started (with `env` added), and for a
        service replica wait until it answers /readyz."""
        assert self.start_process is not None
        args, more = self.commands[name]
        self.start_process(name, args, {**more, **env})
        if name in self.ready_urls:
            wait_http(self.ready_urls[name], self.processes[name], name, timeout=timeout)

    def kill_worker(self, sig: signal.Signals = signal.SIGKILL) -> int:
        """Kill the worker (SIGKILL: no hand-back, no last report) and wait for it to exit."""
        return self.kill("worker", sig)

    def start_worker(self, **env: str) -> None:
        """Start a worker again (a new process, the same id, scratch and checkpoint store), with
        `env` added to its environment."""
        assert self.start_process is not None
        assert self.worker_args, "this stack runs no worker"
        self.start_process("worker", self.worker_args, {**self.worker_env, **env})

    def admin_token(self) -> str:
        from servicekit.auth import mint_token

        return mint_token(self.jwt_secret, "stack-operator", roles=["admin"], ttl_seconds=3600)

    def token(self, sub: str = "e2e-user", *, ttl_seconds: int = 3600) -> str:
        from servicekit.auth import mint_token

        return mint_token(self.jwt_secret, sub, ttl_seconds=ttl_seconds)

    def headers(self, sub: str = "e2e-user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(sub)}"}

    def log(self, name: str, lines: int = 60) -> str:
        path = self.root / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        """Raise with the last log lines of any process that has exited."""
        for name, proc in self.processes.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; its log ends:\n{self.log(name)}"
                )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} before answering {url}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2):  # noqa: S310 - local
            return
        time.sleep(0.3)
    raise TimeoutError(f"{name} did not answer {url} within {timeout}s")


def _stop(proc: subprocess.Popen[bytes], grace: float = 20) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


async def _create_databases(tag: str) -> dict[str, tuple[str, str]]:
    from servicekit.db import bootstrap_service_database, with_credentials

    made: dict[str, tuple[str, str]] = {}
    for service in SERVICES:
        name = f"ftd_stack_{tag}_{SCHEMAS[service]}"
        password = secrets.token_hex(16)
        await bootstrap_service_database(
            ADMIN_DSN, database=name, role=name, password=password, schema=SCHEMAS[service]
        )
        made[service] = (
            name,
            with_credentials(ADMIN_DSN, user=name, password=password, database=name),
        )
    return made


async def _drop_databases(names: Sequence[str]) -> None:
    from servicekit.db import drop_database

    for name in names:
        with contextlib.suppress(Exception):
            await drop_database(ADMIN_DSN, name, roles=[name])


async def _worker_consuming(
    prefix: str,
    job_types: Sequence[str],
    proc: subprocess.Popen[bytes] | Sequence[subprocess.Popen[bytes]],
    timeout: float = 120,
    amqp_url: str = AMQP_URL,
) -> None:
    """Wait until the worker `proc` (or each of several) consumes the local work queue of each
    job type for a CPU (it is ready for jobs): a job created before would start out as
    `no_worker` and record its arrival. GPU classes' queues are not awaited: a CPU worker
    consumes them only when forced."""
    procs = [proc] if isinstance(proc, subprocess.Popen) else list(proc)
    from contracts.catalogue import HardwareClass
    from contracts.enums import GPUProvider, JobType
    from contracts.routing import BrokerNames
    from messaging.broker import Broker
    from messaging.topology import consumer_count

    broker = Broker(amqp_url, BrokerNames(prefix), client_name="ftd-stack-probe")
    await broker.connect()
    wanted = {
        queue
        for t, p, c, queue in broker.names.all_work_routes()
        if p is GPUProvider.LOCAL
        and c is HardwareClass.CPU
        and t in {JobType(j) for j in job_types}
    }
    deadline = time.monotonic() + timeout
    try:
        while True:
            channel = await broker.channel()
            try:
                counts = [await consumer_count(channel, q) for q in sorted(wanted)]
            except Exception:
                counts = [0]  # not declared yet: the services are still setting up
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
            if all(count >= len(procs) for count in counts):
                return
            for started in procs:
                if started.poll() is not None:
                    raise RuntimeError(
                        f"a worker exited with {started.returncode} before consuming"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker consumes no work queue after {timeout:.0f}s")
            await asyncio.sleep(0.2)
    finally:
        await broker.close()


async def _named_by(prefix: str, management_url: str, vhost: str) -> tuple[list[str], list[str]]:
    """Every queue and exchange of the vhost whose name starts with the prefix, from the management
    API: also those made at run time (a private pool's queues, declared when its worker enrolls)."""
    parts = httpx.URL(management_url)
    async with httpx.AsyncClient(
        auth=(parts.username, parts.password), timeout=10, trust_env=False
    ) as http:
        base = f"{parts.scheme}://{parts.host}:{parts.port}/api"
        found: list[list[str]] = []
        for kind in ("queues", "exchanges"):
            listed = await http.get(
                f"{base}/{kind}/{quote(vhost, safe='')}", params={"columns": "name"}
            )
            listed.raise_for_status()
            found.append([o["name"] for o in listed.json() if o["name"].startswith(prefix)])
    return found[0], found[1]


async def _drop_broker_namespace(
    prefix: str, amqp_url: str = AMQP_URL, management_url: str = MANAGEMENT_URL
) -> None:
    from contracts.routing import BrokerNames
    from data_service.entrypoints.workers import queue_specs as data_queues
    from job_api.entrypoints.workers import queue_specs as job_queues
    from messaging.broker import Broker
    from model_server.entrypoints.workers import queue_specs as model_server_queues
    from registry_service.entrypoints.workers import queue_specs as registry_queues
    from webhook_service.entrypoints.workers import queue_specs as webhook_queues

    broker = Broker(amqp_url, BrokerNames(prefix), client_name="ftd-stack-teardown")
    await broker.connect()
    try:
        names = broker.names
        specs = [
            *job_queues(broker),
            *data_queues(broker),
            *registry_queues(broker),
            *model_server_queues(broker),
            *webhook_queues(broker),
        ]
        # What the services declare, and whatever else carries the prefix (when the management
        # API answers): a private pool's queues are declared at run time.
        queues = {s.name for s in specs} | {names.dead_letter_queue}
        exchanges = {s.exchange for s in specs if s.exchange}
        exchanges |= {names.events_exchange, names.worker_exchange, names.dead_letter_exchange}
        with contextlib.suppress(Exception):
            vhost = unquote(urlsplit(amqp_url).path[1:]) or "/"
            more_queues, more_exchanges = await _named_by(prefix, management_url, vhost)
            queues |= set(more_queues)
            exchanges |= set(more_exchanges)
        # Each delete on its own channel: a refused one closes its channel, never the next.
        for queue in queues:
            channel = await broker.channel()
            with contextlib.suppress(Exception):
                await channel.queue_delete(queue, if_unused=False, if_empty=False)
        for exchange in exchanges:
            channel = await broker.channel()
            with contextlib.suppress(Exception):
                await channel.exchange_delete(exchange, if_unused=False)
    finally:
        await broker.close()


def _migrate(urls: dict[str, str]) -> None:
    from data_service.entrypoints.cli import migrate as migrate_data
    from job_api.entrypoints.cli import migrate as migrate_jobs
    from model_server.entrypoints.cli import migrate as migrate_model_server
    from registry_service.entrypoints.cli import migrate as migrate_registry
    from webhook_service.entrypoints.cli import migrate as migrate_webhooks

    migrate_jobs(urls["job-api"])
    migrate_data(urls["data-service"])
    migrate_registry(urls["registry-service"])
    migrate_model_server(urls["model-server"])
    migrate_webhooks(urls["webhook-service"])


def _enroll(base_url: str, jwt_secret: str, name: str) -> str:
    """Enroll a shared-pool worker as an operator does (POST /api/workers through the gateway):
    job-api makes its broker user. Returns the token."""
    from servicekit.auth import mint_token

    admin = mint_token(jwt_secret, "stack-operator", roles=["admin"], ttl_seconds=600)
    response = httpx.post(
        f"{base_url}/api/workers",
        json={"name": name, "pool": "shared"},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    response.raise_for_status()
    token: str = response.json()["data"]["token"]
    return token


async def _drop_worker_users(prefix: str, management_url: str = MANAGEMENT_URL) -> None:
    """The broker users job-api made for this stack's workers (their permissions name the
    stack's prefix)."""
    parts = httpx.URL(management_url)
    async with httpx.AsyncClient(
        auth=(parts.username, parts.password), timeout=10, trust_env=False
    ) as http:
        base = f"{parts.scheme}://{parts.host}:{parts.port}/api"
        permissions = (await http.get(f"{base}/permissions")).json()
        for grant in permissions:
            if grant["user"].startswith("ftdw-") and re.escape(prefix) in grant["read"]:
                await http.delete(f"{base}/users/{grant['user']}")


@contextlib.contextmanager
def full_stack(
    root: Path,
    *,
    worker_job_types: Sequence[str] | None = CPU_JOB_TYPES,
    ui: bool = False,
    build_ui: bool = True,
    extra_env: dict[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
    workers: int = 1,
    amqp_url: str = AMQP_URL,
    management_url: str = MANAGEMENT_URL,
) -> Iterator[Stack]:
    """The platform on free ports. `worker_job_types=None` starts no worker; a list naming
    llm_lora starts it with --force-job-types (the tiny Llama trains on CPU).

    `replicas` runs several processes of a service (`{"job-api": 2}`: job-api and job-api-2,
    each on its own port, all behind the gateway); `workers` enrolls and starts that many CPU
    workers (worker, worker-2, ...). `amqp_url` may be a cluster's comma-separated URL list, with
    `management_url` one of its nodes' management API."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    tag = secrets.token_hex(4)
    prefix = f"stk{tag}."
    jwt_secret = secrets.token_urlsafe(32)
    worker_key = secrets.token_urlsafe(32)
    count = {service: (replicas or {}).get(service, 1) for service in SERVICES}
    instances = {s: [s, *(f"{s}-{n}" for n in range(2, count[s] + 1))] for s in SERVICES}
    every = [name for service in SERVICES for name in instances[service]]
    ports = {name: free_port() for name in (*every, "gateway", "ui")}

    def addresses(service: str) -> str:
        return ",".join(f"127.0.0.1:{ports[name]}" for name in instances[service])

    base_url = f"http://127.0.0.1:{ports['gateway']}"
    databases: dict[str, tuple[str, str]] = {}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    commands: dict[str, tuple[list[str], dict[str, str]]] = {}
    logs: list[object] = []
    try:
        databases = asyncio.run(_create_databases(tag))
        _migrate({service: url for service, (_, url) in databases.items()})
        env = {
            **os.environ,
            "FTD_ENV": "development",
            "FTD_AMQP_URL": amqp_url,
            "FTD_BROKER_PREFIX": prefix,
            "FTD_JWT_SECRET": jwt_secret,
            "FINETUNE_WORKER_KEY": worker_key,
            "FTD_DATA_TICKET_SECRET": secrets.token_urlsafe(32),
            "FTD_ENABLE_OFFLINE_MODELS": "true",
            "FTD_PUBLIC_BASE_URL": base_url,
            "FTD_ACCESS_LOG": "false",
            "JOB_API_PRESENCE_INTERVAL": "1",
            # Each enrolled worker gets its own broker user (least privilege), as in production.
            "FTD_BROKER_MANAGEMENT_URL": management_url,
            "JOB_API_DB_POOL_SIZE": "10",
            "DATA_SERVICE_DB_POOL_SIZE": "5",
            "REGISTRY_SERVICE_DB_POOL_SIZE": "5",
            "MODEL_SERVER_DB_POOL_SIZE": "5",
            # model-server loads what the worker stored (FTD_MODEL_STORE_DIR), on the CPU, and
            # never reaches for the Hub.
            "MODEL_SERVER_HUB_DOWNLOADS": "false",
            "MODEL_SERVER_DEVICE": "cpu",
            "WEBHOOK_SERVICE_DB_POOL_SIZE": "5",
            # Webhooks may name a receiver on this machine over http (development and tests).
            "WEBHOOK_SERVICE_ALLOW_HTTP_LOOPBACK": "true",
            # The sender looks for due deliveries often: a test waits for them.
            "WEBHOOK_SERVICE_SENDER_POLL_SECONDS": "0.2",
            "DATA_SERVICE_STORAGE_DIR": str(root / "datasets"),
            "FTD_MODEL_STORE_DIR": str(root / "models"),
            "FTD_WORKER_CHECKPOINT_DIR": str(root / "checkpoints"),
            "FTD_TINY_LLAMA_DIR": str(root / "tiny-llama"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            # Reports every half second: a short CPU job still draws a curve while it is watched.
            "FTD_WORKER_PROGRESS_INTERVAL": "0.5",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
            **{DB_ENV[service]: url for service, (_, url) in databases.items()},
            **(extra_env or {}),
        }
        # Never a developer's own settings: the stack names every secret and address itself.
        for key in ("HF_TOKEN", "FTD_WORKER_HF_TOKEN", "WANDB_API_KEY"):
            env.pop(key, None)

        def start(name: str, args: list[str], cwd: Path = ROOT, **more: str) -> None:
            out = (root / "logs" / f"{name}.log").open("ab")
            logs.append(out)
            commands[name] = (args, more)
            processes[name] = subprocess.Popen(
                args,
                cwd=cwd,
                env={**env, **more},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        for service in SERVICES:
            for name in instances[service]:
                start(
                    name,
                    [
                        str(BIN / service),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ports[name]),
                    ],
                )
        if ui:
            if build_ui:
                subprocess.run(
                    [shutil.which("npm") or "npm", "run", "build"], cwd=FRONTEND, check=True
                )
            start(
                "ui",
                [
                    str(FRONTEND / "node_modules/.bin/vite"),
                    "preview",
                    "--port",
                    str(ports["ui"]),
                    "--strictPort",
                ],
                cwd=FRONTEND,
                FTD_API_URL=base_url,
            )
        start(
            "gateway",
            ["bash", str(ROOT / "scripts/gateway.sh")],
            FTD_GATEWAY_PORT=str(ports["gateway"]),
            FTD_GATEWAY_DIR=str(root / "gateway"),
            FTD_JOB_API_ADDR=addresses("job-api"),
            FTD_DATA_SERVICE_ADDR=addresses("data-service"),
            FTD_REGISTRY_ADDR=addresses("registry-service"),
            FTD_MODEL_SERVER_ADDR=addresses("model-server"),
            FTD_WEBHOOK_ADDR=addresses("webhook-service"),
            FTD_UI_ADDR=f"127.0.0.1:{ports['ui']}",
        )
        ready_urls = {name: f"http://127.0.0.1:{ports[name]}/readyz" for name in every}
        for name in every:
            wait_http(ready_urls[name], processes[name], name)
        wait_http(f"{base_url}/healthz", processes["gateway"], "gateway")
        if ui:
            wait_http(f"http://127.0.0.1:{ports['ui']}/", processes["ui"], "ui")
        worker_args: list[str] = []
        worker_env: dict[str, str] = {}
        if worker_job_types:
            for n in range(1, workers + 1):
                name = "worker" if n == 1 else f"worker-{n}"
                suffix = "" if n == 1 else f"-{n}"
                enrolled = {
                    "FTD_WORKER_TOKEN": _enroll(base_url, jwt_secret, f"stack-cpu-{tag}{suffix}")
                }
                args = [
                    str(BIN / "ftd-worker"),
                    "run",
                    "--api-url",
                    base_url,
                    "--provider",
                    "local",
                    "--no-console",
                    "--work-dir",
                    str(root / name),
                ]
                for job_type in worker_job_types:
                    args += ["--job-type", job_type]
                if "llm_lora" in worker_job_types:
                    args.append("--force-job-types")
                start(name, args, **enrolled)
                if n == 1:
                    worker_args, worker_env = args, enrolled
            started = [p for name, p in processes.items() if name.startswith("worker")]
            asyncio.run(_worker_consuming(prefix, worker_job_types, started, amqp_url=amqp_url))
        yield Stack(
            base_url=base_url,
            jwt_secret=jwt_secret,
            worker_key=worker_key,
            root=root,
            model_store=root / "models",
            env=env,
            processes=processes,
            start_process=lambda name, args, more: start(name, args, **more),
            worker_args=worker_args,
            worker_env=worker_env,
            commands=commands,
            ready_urls=ready_urls,
            amqp_url=amqp_url,
            management_url=management_url,
            broker_prefix=prefix,
        )
    finally:
        # The worker first (it hands a running job back), then the front door, then services.
        for name in (*[n for n in processes if n.startswith("worker")], "gateway", "ui"):
            if name in processes:
                _stop(processes[name])
        for name in reversed(every):
            if name in processes:
                _stop(processes[name])
        for out in logs:
            with contextlib.suppress(Exception):
                out.close()  # type: ignore[attr-defined]
        with contextlib.suppress(Exception):
            asyncio.run(_drop_broker_namespace(prefix, amqp_url, management_url))
        with contextlib.suppress(Exception):
            asyncio.run(_drop_worker_users(prefix, management_url))
        asyncio.run(_drop_databases([name for name, _ in databases.values()]))


def main(argv: list[str]) -> int:
    keep_logs: Path | None = None
    if argv[:1] == ["--keep-logs"]:
        keep_logs, argv = Path(argv[1]).resolve(), argv[2:]
    out = Path(os.environ.get("E2E_OUT", FRONTEND / "e2e-output")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ftd-stack-"))
    # The browser tests train all three types: llm_lora is the catalogue's offline tiny Llama,
    # which trains on the CPU (full_stack starts the worker with --force-job-types for it).
    default_types = ",".join((*CPU_JOB_TYPES, "llm_lora"))
    job_types = os.environ.get("E2E_WORKER_JOB_TYPES", default_types).split(",")
    try:
        with full_stack(
            work,
            worker_job_types=[t for t in job_types if t],
            ui=True,
            build_ui=os.environ.get("E2E_BUILD", "1") == "1",
        ) as stack:
            e2e_env = {
                **os.environ,
                "E2E_BASE_URL": stack.base_url,
                "E2E_TOKEN": stack.token("e2e-user", ttl_seconds=3 * 3600),
                "E2E_WORKER": "real",
                "E2E_OUT": str(out),
            }
            command = argv or [
                shutil.which("node") or "node",
                "--test",
                "--test-reporter=spec",
                "e2e/flows.test.mjs",
            ]
            result = subprocess.run(command, cwd=FRONTEND, env=e2e_env, check=False)
            if result.returncode != 0:
                for name in stack.processes:
                    print(f"--- {name} (last lines)\n{stack.log(name, 30)}", file=sys.stderr)
            return result.returncode
    finally:
        if keep_logs is not None:
            shutil.copytree(work / "logs", keep_logs, dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
