"""Upload end to end through the gateway: a generated >= 1 GB CSV sent with curl to nginx, which
streams it to data-service (`data-service serve` in a subprocess), which validates, hashes and
writes it to disk (fsync) before answering. Baseline in the same run: curl writing the same file
to the same disk (file:// to a file, then fsync). The two alternate for `--rounds` rounds (3),
with a sync before each, and their medians are compared: on this VM the time the page cache takes
to absorb a gigabyte varies several times over from one minute to the next. Reports MB/s, the
ratio (target >= 0.5x) and data-service's peak RSS (target < 300 MB).

    uv run python bench/upload_throughput.py [--size-mb 1024] [--rounds 3] [--profile FILE]

`--profile FILE` records data-service with py-spy (every thread) during the last upload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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


def peak_rss_mb(pid: int) -> float:
    """VmHWM of the service's Python process (uv run may sit in between)."""
    proc = psutil.Process(pid)
    best = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        best = max(best, int(line.split()[1]) / 1024)
        except OSError:
            pass
    return best


def curl_upload(url: str, path: Path, token: str) -> tuple[float, str]:
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
            f"Authorization: Bearer {token}",
            "-F",
            f"file=@{path};type=text/csv",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - start, out.stdout


def curl_copy(path: Path, target: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", str(target), f"file://{path}"], check=True)
    fd = os.open(target, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return time.perf_counter() - start


def _upload(url: str, path: Path, token: str) -> float:
    seconds, answer = curl_upload(url, path, token)
    status = answer.rsplit("\n", 1)[-1]
    if status != "201":
        raise SystemExit(f"upload failed: {answer[-500:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--profile", type=Path, default=None, help="py-spy output file")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating baseline/upload rounds (medians)"
    )
    args = parser.parse_args()
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
            size = write_csv(source, args.size_mb << 20)
            print(f"generated {source.name}: {size / 1e6:,.0f} MB")
            service_port, gateway_port = free_port(), free_port()
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
                "FTD_GATEWAY_PORT": str(gateway_port),
                "FTD_GATEWAY_DIR": str(tmpdir / "gateway"),
                "FTD_DATA_SERVICE_ADDR": f"127.0.0.1:{service_port}",
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
            wait_http(f"http://127.0.0.1:{service_port}/healthz", service)
            gateway = subprocess.Popen(["bash", str(ROOT / "scripts/gateway.sh")], env=env)
            processes.append(gateway)
            wait_http(f"http://127.0.0.1:{gateway_port}/healthz", gateway)
            token = mint_token(JWT_SECRET, "bench", roles=[], ttl_seconds=3600)
            # The generated file's own writeback must not slow the first measurement down.
            os.sync()
            url = f"http://127.0.0.1:{gateway_port}/api/finetune/upload"
            copies: list[float] = []
            uploads: list[float] = []
            for _ in range(args.rounds - 1):
                # Alternating rounds: how fast this VM's page cache takes a gigabyte varies by
                # several times from one minute to the next (fresh pages cost the hypervisor
                # faults), so one of each could compare a slow moment with a fast one.
                copies.append(curl_copy(source, tmpdir / "copy.csv"))
                (tmpdir / "copy.csv").unlink()
                os.sync()
                uploads.append(_upload(url, source, token))
                os.sync()
            copies.append(curl_copy(source, tmpdir / "copy.csv"))
            (tmpdir / "copy.csv").unlink()
            os.sync()
            recorder = None
            if args.profile is not None:
                recorder = subprocess.Popen(
                    [
                        str(Path(sys.prefix) / "bin" / "py-spy"),
                        "record",
                        "--threads",
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--duration",
                        str(max(1, round(size / 250e6))),
                        "--pid",
                        str(service.pid),
                        "--output",
                        str(args.profile),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            uploads.append(_upload(url, source, token))
            if recorder is not None:
                recorder.wait()
            rss = peak_rss_mb(service.pid)
            copy_s = statistics.median(copies)
            upload_s = statistics.median(uploads)
            disk = size / 1e6 / copy_s
            upload = size / 1e6 / upload_s
            print()
            print(f"{args.rounds} alternating rounds; seconds of each, then the medians:")
            print(f"  baseline: {', '.join(f'{c:.2f}' for c in copies)}")
            print(f"  upload:   {', '.join(f'{u:.2f}' for u in uploads)}")
            print()
            print(f"{'path (median)':44} {'seconds':>8} {'MB/s':>8}")
            print(f"{'curl file:// -> same disk (+fsync), baseline':44} {copy_s:8.2f} {disk:8.1f}")
            print(f"{'curl -> nginx -> data-service (validated)':44} {upload_s:8.2f} {upload:8.1f}")
            ratio = upload / disk
            print()
            print(
                f"upload / disk write  {ratio:5.2f}x  (target >= 0.5x)  {'PASS' if ratio >= 0.5 else 'MISS'}"
            )
            print(
                f"data-service peak RSS {rss:.0f} MB (target < 300 MB)  {'PASS' if rss < 300 else 'MISS'}"
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


async def _drop_topology(prefix: str) -> None:
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="bench-teardown")
    await broker.connect()
    channel = await broker.channel()
    await delete_topology(channel, broker.names, [s.name for s in queue_specs(broker)])
    await broker.close()


if __name__ == "__main__":
    main()
