"""Upload end to end through the gateway against a same-work floor, both measured in this run.

A generated >= 1 GB CSV is sent with `curl -F file=@...` to nginx, rendered from the platform's
gateway configuration (scripts/gateway.sh), which streams it to:

- data-service (`data-service serve` in a subprocess, everything on): it validates, hashes and
  writes the file (fsync) and commits its row before answering 201;
- the floor (bench/_upload_floor_app.py), behind a second nginx from the same configuration (its
  data-service address pointed at the floor): a bare ASGI callable served by uvicorn as
  data-service is, which parses the multipart body with the same parser, validates with
  data-service's own validator, hashes (sha256) and writes with data-service's own local storage
  writer (O_DIRECT where it works, fsync, rename, fsync of the folder), and answers 201. No
  framework, no middleware, no database, no events.

The two alternate for `--rounds` rounds (3), floor first, with a sync before each (and each
stored file removed), and their medians are compared: on this VM the time the page cache and disk
take to absorb a gigabyte varies several times over from one minute to the next. Both answers
must name the same size and sha256. Reports MB/s, the ratio (target >= 0.8x), CPU seconds of each
server per upload, and data-service's peak RSS (target < 300 MB).

    uv run python bench/upload_throughput.py [--quick] [--size-mb 1024] [--rounds 3] [--profile FILE]

`--quick`: 256 MB, 2 rounds (checks that the script works; the ratio is noisier).
`--profile FILE` records data-service with py-spy (every thread, raw format) during the last
upload, and the floor during the last floor round into FILE.floor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datafiles import write_csv

from contracts.routing import BrokerNames
from data_service.entrypoints.cli import migrate
from data_service.entrypoints.workers import queue_specs
from messaging.broker import Broker
from messaging.topology import delete_topology
from servicekit.auth import mint_token
from servicekit.db import bootstrap_service_database, drop_database, with_credentials

ADMIN_DSN = os.environ.get("FTD_BENCH_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("FTD_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parents[1]
JWT_SECRET = uuid.uuid4().hex + uuid.uuid4().hex
TOKEN = mint_token(JWT_SECRET, "bench", roles=[], ttl_seconds=3600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def peak_rss_mb(pid: int, field: str = "VmHWM") -> float:
    """VmHWM (or another /proc status field, VmRSS) of the service's Python process (uv run may
    sit in between)."""
    proc = psutil.Process(pid)
    best = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith(f"{field}:"):
                        best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return best


def curl_upload(url: str, path: Path) -> tuple[float, dict[str, Any]]:
    """Seconds from the first byte sent to the 201, and the answer's `data`."""
    start = time.perf_counter()
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-H",
            f"Authorization: Bearer {TOKEN}",
            "-F",
            f"file=@{path};type=text/csv",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    answer, _, status = out.stdout.rpartition("\n")
    if status != "201":
        raise SystemExit(f"upload to {url} failed ({status}): {answer[-500:]}")
    return seconds, json.loads(answer)["data"]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU of the server's process (every thread, those ended included) and of its
    main thread alone, the one running the event loop: where the two servers' code differs."""
    proc = psutil.Process(pid)
    times = proc.cpu_times()
    loop = next((t for t in proc.threads() if t.id == pid), None)
    return (
        times.user + times.system,
        loop.user_time + loop.system_time if loop is not None else float("nan"),
    )


def start_profile(pid: int, output: Path, size: int) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.prefix) / "bin" / "py-spy"
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy in the environment (uv pip install py-spy)")
    return subprocess.Popen(
        [
            str(py_spy),
            "record",
            "--threads",
            "--format",
            "raw",
            "--rate",
            "200",
            "--duration",
            str(max(1, round(size / 250e6))),
            "--pid",
            str(pid),
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def clear_store(store: Path) -> None:
    """Remove the stored uploads (each round writes a gigabyte), then let the disk settle."""
    datasets = store / "datasets"
    if datasets.is_dir():
        for f in datasets.iterdir():
            f.unlink()
    os.sync()


@dataclass
class Target:
    name: str
    url: str
    pid: int
    store: Path
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    loop_cpu: list[float] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)

    def upload(self, source: Path, profile: Path | None, size: int) -> None:
        recorder = start_profile(self.pid, profile, size) if profile is not None else None
        cpu_before = cpu_seconds(self.pid)
        seconds, answer = curl_upload(self.url, source)
        cpu_after = cpu_seconds(self.pid)
        self.cpu.append(cpu_after[0] - cpu_before[0])
        self.loop_cpu.append(cpu_after[1] - cpu_before[1])
        if recorder is not None:
            recorder.wait()
        self.seconds.append(seconds)
        self.answers.append(answer)
        clear_store(self.store)


def start_gateway(
    env: dict[str, str], upstream_port: int, run_dir: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """nginx from the platform's gateway configuration, its data-service route pointed at
    `upstream_port`."""
    port = free_port()
    gateway = subprocess.Popen(
        ["bash", str(ROOT / "scripts/gateway.sh")],
        env={
            **env,
            "FTD_GATEWAY_PORT": str(port),
            "FTD_GATEWAY_DIR": str(run_dir),
            "FTD_DATA_SERVICE_ADDR": f"127.0.0.1:{upstream_port}",
        },
    )
    return gateway, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="256 MB, 2 rounds")
    parser.add_argument("--size-mb", type=int, default=None, help="file size (default 1024)")
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output file")
    parser.add_argument(
        "--rounds", type=int, default=None, help="alternating floor/upload rounds (default 3)"
    )
    args = parser.parse_args()
    size_mb = args.size_mb or (256 if args.quick else 1024)
    rounds = args.rounds or (2 if args.quick else 3)
    if shutil.which("curl") is None:
        raise SystemExit("curl is needed (apt-get install -y curl)")
    print(f"load average at start: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    name = f"ftd_bench_upload_{uuid.uuid4().hex[:8]}"
    password = uuid.uuid4().hex
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    asyncio.run(
        bootstrap_service_database(
            ADMIN_DSN, database=name, role=name, password=password, schema="data"
        )
    )
    db_url = with_credentials(ADMIN_DSN, user=name, password=password, database=name)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        migrate(db_url)
        with tempfile.TemporaryDirectory(
            prefix="ftd-bench-upload-", dir=ROOT / ".dev" if (ROOT / ".dev").is_dir() else None
        ) as tmp:
            tmpdir = Path(tmp)
            source = tmpdir / "train.csv"
            size = write_csv(source, size_mb << 20)
            print(f"generated {source.name}: {size / 1e6:,.0f} MB")
            service_port, floor_port = free_port(), free_port()
            env = {
                **os.environ,
                "FTD_ENV": "test",
                "FTD_JWT_SECRET": JWT_SECRET,
                "FTD_DATA_TICKET_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
                "DATA_SERVICE_DB_PASSWORD": password,
                "FTD_AMQP_URL": AMQP_URL,
                "FTD_BROKER_PREFIX": prefix,
                "DATA_SERVICE_DATABASE_URL": db_url,
                "DATA_SERVICE_STORAGE_DIR": str(tmpdir / "store"),
                "FTD_ACCESS_LOG": "false",
                "FTD_LOG_LEVEL": "WARNING",
            }
            service = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "data_service.entrypoints.cli",
                    "serve",
                    "--port",
                    str(service_port),
                ],
                env=env,
            )
            processes.append(service)
            floor = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "bench" / "_upload_floor_app.py"),
                    "--port",
                    str(floor_port),
                    "--storage-dir",
                    str(tmpdir / "floor-store"),
                ],
                env=env,
            )
            processes.append(floor)
            wait_http(f"http://127.0.0.1:{service_port}/healthz", service)
            asyncio.run(_bind_events_queue(prefix))
            wait_http(f"http://127.0.0.1:{floor_port}/healthz", floor)
            service_gateway, service_gateway_port = start_gateway(
                env, service_port, tmpdir / "gateway"
            )
            processes.append(service_gateway)
            floor_gateway, floor_gateway_port = start_gateway(
                env, floor_port, tmpdir / "floor-gateway"
            )
            processes.append(floor_gateway)
            wait_http(f"http://127.0.0.1:{service_gateway_port}/healthz", service_gateway)
            wait_http(f"http://127.0.0.1:{floor_gateway_port}/healthz", floor_gateway)
            # Resident memory before any upload: the imports and the running service.
            service_idle = peak_rss_mb(service.pid, "VmRSS")
            floor_idle = peak_rss_mb(floor.pid, "VmRSS")
            path = "/api/finetune/upload"
            targets = [
                Target(
                    "floor",
                    f"http://127.0.0.1:{floor_gateway_port}{path}",
                    floor.pid,
                    tmpdir / "floor-store",
                ),
                Target(
                    "data-service",
                    f"http://127.0.0.1:{service_gateway_port}{path}",
                    service.pid,
                    tmpdir / "store",
                ),
            ]
            # The generated file's own writeback must not slow the first measurement down.
            os.sync()
            for i in range(rounds):
                # Alternating rounds: how fast this VM absorbs a gigabyte varies by several
                # times from one minute to the next (fresh pages cost the hypervisor faults), so
                # one of each could compare a slow moment with a fast one.
                last = i == rounds - 1
                for target in targets:
                    profile = None
                    if last and args.profile is not None:
                        profile = (
                            args.profile
                            if target.name == "data-service"
                            else Path(f"{args.profile}.floor")
                        )
                    target.upload(source, profile, size)
            report(
                targets,
                size,
                rounds,
                (peak_rss_mb(service.pid), service_idle),
                (peak_rss_mb(floor.pid), floor_idle),
            )
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        asyncio.run(drop_database(ADMIN_DSN, name, roles=[name]))
        asyncio.run(_drop_topology(prefix))


def report(
    targets: list[Target],
    size: int,
    rounds: int,
    service_rss: tuple[float, float],
    floor_rss: tuple[float, float],
) -> None:
    floor, service = targets
    for a, b in zip(floor.answers, service.answers, strict=True):
        if (a["size_bytes"], a["sha256"]) != (b["size_bytes"], b["sha256"]):
            raise SystemExit(f"the floor and data-service disagree: {a} vs {b}")
        if a["rows"] != b["rows"]:
            raise SystemExit(f"the floor and data-service count different rows: {a} vs {b}")
    print()
    print(f"{rounds} alternating rounds (floor first); seconds of each, then the medians:")
    for t in targets:
        print(f"  {t.name:13} {', '.join(f'{s:.2f}' for s in t.seconds)}")
    print()
    print(f"{'path (median)':52} {'seconds':>8} {'MB/s':>8} {'CPU s':>6} {'loop':>6}")
    labels = {
        "floor": "curl -> nginx -> bare ASGI floor (same work)",
        "data-service": "curl -> nginx -> data-service (validated)",
    }
    rates = {}
    for t in targets:
        median = statistics.median(t.seconds)
        rates[t.name] = size / 1e6 / median
        print(
            f"{labels[t.name]:52} {median:8.2f} {rates[t.name]:8.1f} "
            f"{statistics.median(t.cpu):6.2f} {statistics.median(t.loop_cpu):6.2f}"
        )
    print(
        "(CPU s: the server process's user + system CPU per upload, median; loop: its event-loop "
        "thread's share,\n where the servers' own code runs: the body, multipart, blocks; "
        f"{service.answers[-1]['rows']:,} rows, sha256 {service.answers[-1]['sha256'][:12]}... "
        "in both answers)"
    )
    ratio = rates["data-service"] / rates["floor"]
    print()
    print(f"floor                 {rates['floor']:7.1f} MB/s")
    print(f"data-service upload   {rates['data-service']:7.1f} MB/s")
    print(
        f"upload / floor        {ratio:5.2f}x  (target >= 0.8x)  {'PASS' if ratio >= 0.8 else 'MISS'}"
    )
    print(
        f"data-service peak RSS {service_rss[0]:.0f} MB (target < 300 MB)  "
        f"{'PASS' if service_rss[0] < 300 else 'MISS'}  (before the first upload: "
        f"{service_rss[1]:.0f} MB; the floor's: peak {floor_rss[0]:.0f} MB, before "
        f"{floor_rss[1]:.0f} MB)"
    )


def _events_queue(prefix: str) -> str:
    return f"{prefix}bench.dataset-events"


async def _bind_events_queue(prefix: str) -> None:
    """A queue for data-service's dataset events, as job-api's binding is on the platform: the
    relay's confirmed, mandatory publish is routed, not refused and retried."""
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="bench-setup")
    await broker.connect()
    channel = await broker.channel()
    queue = await channel.declare_queue(_events_queue(prefix), durable=True)
    await queue.bind(broker.names.events_exchange, routing_key="dataset.#")
    await broker.close()


async def _drop_topology(prefix: str) -> None:
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="bench-teardown")
    await broker.connect()
    channel = await broker.channel()
    queues = [s.name for s in queue_specs(broker)]
    await delete_topology(channel, broker.names, [*queues, _events_queue(prefix)])
    await broker.close()


if __name__ == "__main__":
    main()
