"""SSE fan-out: many open Server-Sent Events streams on one job-api process while progress reports
flow, measured from the worker's publish to the browser's socket.

job-api is driven from the outside only (`job-api serve`, its HTTP API, a BrokerLink):

1. 100 jobs (`--jobs`), each owned by its own user, are created with POST and claimed by a
   BrokerLink (running, attempt 1, lease 1 h).
2. For each stream count N (`--streams`, default 100 then 1,000), on a fresh job-api process:
   - warm-up (a few streams and reports), then the server's RSS is read (/proc) as the base;
   - N streams are opened, GET /api/finetune/jobs/{id}/stream with the owner's JWT, stream i on
     job i mod 100 (so 1,000 streams = 10 per job and per owner: the per-user stream cap,
     JOB_API_MAX_STREAMS_PER_USER, is raised to that for the run); each counts as open at its
     `snapshot` event;
     RSS again once the server is idle: memory per stream = (RSS open - RSS base) / N;
   - the worker publishes `--rate` (200) progress reports per second for `--seconds`, round-robin
     over the jobs (BrokerLink.publish, i.e. wherever the protocol routes worker reports);
     every report carries a per-job step, and each stream records when that step reaches it:
     delivery latency = arrival at the client socket - the moment before the publish;
   - meanwhile pg_stat_activity is sampled every 50 ms for the benchmark database, grouped by
     application_name: the most connections job-api held and the most that were busy; and the
     database's transactions during the flow (pg_stat_database) are divided by the reports
     published: a stream design that re-reads per stream grows this with N, a shared one not.
3. The table reports per N: streams opened / refused, deliveries received / expected, latency
   p50/p95/p99/max, RSS base/open and per stream, DB connections (idle with streams open, and the
   maximum total and busy during the flow).

The stream client is a small asyncio.Protocol over h11 (this process hosts 1,000 streams next to
the producer: httpx's per-stream cost would make the client, not job-api, the bottleneck).

Targets (issue 5): p99 delivery < 250 ms at 1,000 streams; DB connections constant in the number of
streams: at the largest N, the connections used during the flow (seen busy, or whose state
changed since the flow began) and the most held at once are within one of the smallest N's (the
progress consumer's writes and the wake-up reads share the pool, and whether two overlap is
chance), and the database's transactions per report are within 1.5x (a per-stream design would
be ten times over at 1,000 against 100); memory per stream is reported. A miss is printed, never
raised.

  uv run python bench/sse_fanout.py [--quick] [--streams 100,1000] [--rate 200] [--seconds S]
                                    [--jobs 100] [--profile DIR] [--server-env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _profile
import asyncpg
import h11
import httpx
import orjson
from _common import (
    LatencySummary,
    Phases,
    Server,
    Stack,
    add_server_env_option,
    admin_dsn_for,
    bench_stack,
    bench_worker,
    job_api_server,
    job_body,
    machine_note,
    quiet_logging,
    raise_fd_limit,
    server_env,
    table,
    verdict,
)

from contracts.events import JobProgress
from workerlink.link import BrokerLink

MAX_STEPS = 100_000  # progress = 99 * step / MAX_STEPS: strictly increasing, never 100
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


# --------------------------------------------------------------------------- the stream client


class Deliveries:
    """Send times of the reports and arrival times at the streams."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.unknown = 0

    def arrived(self, job_id: str, step: int, at: float) -> None:
        sent = self.sent.get((job_id, step))
        if sent is None:
            self.unknown += 1  # a warm-up report, or one that is not ours
        else:
            self.latencies.append(at - sent)


class SSEStream(asyncio.Protocol):
    """One GET .../stream over a raw socket: h11 for the HTTP framing (chunked), the SSE fields
    parsed by hand (only `event` and `data` are needed)."""

    def __init__(self, host: str, path: str, token: str, deliveries: Deliveries) -> None:
        self.conn = h11.Connection(h11.CLIENT)
        self.request = h11.Request(
            method="GET",
            target=path,
            headers=[
                ("Host", host),
                ("Accept", "text/event-stream"),
                ("Authorization", f"Bearer {token}"),
            ],
        )
        self.deliveries = deliveries
        self.buffer = b""
        self.status: int | None = None
        self.body = b""
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.conn.send(self.request) + self.conn.send(h11.EndOfMessage()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(
                ConnectionError(f"stream closed before its snapshot (status {self.status})")
            )

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Response):
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                if self.status != 200:
                    self.body += bytes(event.data)
                    continue
                self.buffer += bytes(event.data)
                self._events(at)
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                if not self.opened.done():
                    self.opened.set_exception(
                        ConnectionError(f"status {self.status}: {self.body[:300]!r}")
                    )
                return

    def _events(self, at: float) -> None:
        *complete, self.buffer = _EVENT_END.split(self.buffer)
        for block in complete:
            kind, data = "message", []
            for line in block.splitlines():
                if line.startswith(b"event:"):
                    kind = line[6:].strip().decode()
                elif line.startswith(b"data:"):
                    data.append(line[5:].removeprefix(b" "))
            if kind == "snapshot":
                if not self.opened.done():
                    self.opened.set_result(None)
            elif kind == "progress" and data:
                body = orjson.loads(b"\n".join(data))
                inner = body.get("data") if isinstance(body.get("data"), dict) else body
                step = inner.get("step")
                if step is not None:
                    self.deliveries.arrived(str(body.get("job_id")), int(step), at)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


# --------------------------------------------------------------------------- DB connections


@dataclass
class ConnectionSampler:
    """pg_stat_activity of the benchmark database every `interval` s: job-api's connections (its
    login role), the most at once in total and busy (state other than idle), by application_name."""

    database: str
    role: str
    interval: float = 0.05
    max_total: int = 0
    max_busy: int = 0
    by_name: dict[str, int] = field(default_factory=dict)
    samples: int = 0
    # Backends that ran anything while sampling: seen busy, or their state changed meanwhile.
    used: set[int] = field(default_factory=set)

    async def once(
        self, conn: asyncpg.Connection, since: datetime | None = None
    ) -> tuple[int, int, dict[str, int]]:
        rows = await conn.fetch(
            "SELECT pid, coalesce(application_name, '') AS app, state, state_change "
            "FROM pg_stat_activity WHERE datname = $1 AND usename = $2",
            self.database,
            self.role,
        )
        total = len(rows)
        busy = 0
        names: dict[str, int] = {}
        for r in rows:
            names[r["app"] or "(none)"] = names.get(r["app"] or "(none)", 0) + 1
            if r["state"] not in ("idle", None):
                busy += 1
                if since is not None:
                    self.used.add(r["pid"])
            elif since is not None and r["state_change"] is not None and r["state_change"] >= since:
                self.used.add(r["pid"])
        return total, busy, names

    async def run(self, stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(admin_dsn_for(self.database))
        try:
            since = await conn.fetchval("SELECT now()")
            while not stop.is_set():
                total, busy, names = await self.once(conn, since)
                self.samples += 1
                self.max_total = max(self.max_total, total)
                self.max_busy = max(self.max_busy, busy)
                for name, n in names.items():
                    self.by_name[name] = max(self.by_name.get(name, 0), n)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            await conn.close()


async def database_xacts(database: str) -> int:
    """Transactions committed or rolled back in `database` so far (pg_stat_database)."""
    conn = await asyncpg.connect(admin_dsn_for("postgres"))
    try:
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", database
        )
    finally:
        await conn.close()
    return int(value)


# --------------------------------------------------------------------------- one phase


@dataclass
class PhaseResult:
    streams: int
    opened: int
    refused: dict[str, int]
    expected: int
    latency: LatencySummary | None
    delivered: int
    rss_base: int
    rss_open: int
    rss_end: int
    conns_idle: int
    conns_idle_names: dict[str, int]
    conns_max: int
    conns_busy: int
    conns_used: int
    conns_names: dict[str, int]
    published: int
    publish_seconds: float
    xacts: int


class Fanout:
    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.owners: dict[uuid.UUID, str] = {}  # job id -> owner (the JWT sub)
        self.secrets: dict[uuid.UUID, str | None] = {}
        self.steps: dict[uuid.UUID, int] = {}
        self.worker: BrokerLink | None = None
        self.secret_field = "claim_secret" in JobProgress.model_fields
        self.profiles: list[Path] = []

    async def start(self, server: Server) -> None:
        self.worker = await bench_worker(self.stack, server)

    async def close(self) -> None:
        if self.worker is not None:
            await self.worker.close(flush_timeout=1)

    async def create_jobs(self, server: Server) -> None:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            for j in range(self.args.jobs):
                owner = f"fan-user-{j:04d}"
                response = await client.post(
                    "/api/finetune/jobs",
                    json=job_body(j, owner),
                    headers=self.stack.user_headers(owner),
                )
                if response.status_code != 201:
                    raise RuntimeError(f"POST answered {response.status_code}: {response.text}")
                self.owners[uuid.UUID(response.json()["data"]["id"])] = owner
        assert self.worker is not None
        while len(self.secrets) < len(self.owners):
            offer = await self.worker.next_offer(timeout=30)
            reply = await self.worker.claim(offer)
            if not reply.granted or reply.job is None or reply.job.attempt != 1:
                raise RuntimeError(f"claim of {offer.job_id} refused: {reply}")
            self.secrets[offer.job_id] = getattr(reply.job, "claim_secret", None)
            self.steps[offer.job_id] = 0

    def report(self, job_id: uuid.UUID) -> JobProgress:
        self.steps[job_id] += 1
        step = self.steps[job_id]
        fields: dict[str, Any] = {
            "job_id": job_id,
            "attempt": 1,
            "worker_id": "bench-w1",
            "progress": round(99.0 * step / MAX_STEPS, 6),
            "step": step,
            "total_steps": MAX_STEPS,
            "epoch": round(step / 1000, 4),
            "loss": round(2.0 / (1 + step), 6),
            "metrics": {"learning_rate": 2e-5},
            "log_lines": [f"step {step}"],
        }
        if self.secret_field:
            fields["claim_secret"] = self.secrets[job_id] or ""
        return JobProgress(**fields)

    async def flow(self, rate: float, seconds: float, deliveries: Deliveries | None) -> int:
        """Publish `rate` reports/s for `seconds`, round-robin over the jobs, each publish a task
        at its scheduled time (a slow confirm does not delay the next report)."""
        jobs = list(self.owners)
        total = int(rate * seconds)
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: list[asyncio.Task[None]] = []
        for n in range(total):
            delay = start + n / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            job_id = jobs[n % len(jobs)]
            payload = self.report(job_id)
            if deliveries is not None:
                deliveries.sent[(str(job_id), int(payload.step or 0))] = time.perf_counter()
            assert self.worker is not None
            tasks.append(asyncio.create_task(self.worker.publish(payload)))
        await asyncio.gather(*tasks)
        return total

    async def open_streams(
        self, server: Server, n: int, deliveries: Deliveries
    ) -> tuple[list[SSEStream], dict[str, int]]:
        jobs = list(self.owners)
        tokens = {owner: self.stack.token(owner) for owner in self.owners.values()}
        split = urlsplit(server.base_url)
        host, port = split.hostname or "127.0.0.1", split.port or 80
        loop = asyncio.get_running_loop()
        streams: list[SSEStream] = []
        refused: dict[str, int] = {}

        async def one(i: int) -> None:
            job_id = jobs[i % len(jobs)]
            stream = SSEStream(
                f"{host}:{port}",
                f"/api/finetune/jobs/{job_id}/stream",
                tokens[self.owners[job_id]],
                deliveries,
            )
            try:
                await loop.create_connection(lambda: stream, host, port)
                await asyncio.wait_for(stream.opened, 60)
                streams.append(stream)
            except (OSError, ConnectionError, TimeoutError) as exc:
                key = str(stream.status) if stream.status else type(exc).__name__
                refused[key] = refused.get(key, 0) + 1
                stream.close()

        for start in range(0, n, 100):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 100))))
        return streams, refused


async def run_phase(fan: Fanout, n: int, phases: Phases) -> PhaseResult:
    args = fan.args
    # Up to 1,000 streams on 100 jobs is 10 per owner: above the default per-user cap (8, a
    # product limit this bench does not measure), so the cap is raised to what the run needs.
    per_user = -(-n // args.jobs)
    env = {"JOB_API_MAX_STREAMS_PER_USER": str(max(8, per_user)), **server_env(args)}
    server = job_api_server(fan.stack, JOB_API_LEASE_SECONDS="3600", **env)
    await server.start()
    streams: list[SSEStream] = []
    try:
        if not fan.owners:
            await fan.start(server)  # the work queues exist once job-api has started
            await fan.create_jobs(server)
            phases.mark("create + claim jobs")
        # Warm-up: a few streams and reports, so the base RSS is that of a server that has served.
        warm = Deliveries()
        few, _ = await fan.open_streams(server, min(10, n), warm)
        await fan.flow(args.rate, 1.0, None)
        await asyncio.sleep(0.5)
        for s in few:
            s.close()
        await server.wait_idle()
        rss_base = server.rss_bytes()

        deliveries = Deliveries()
        streams, refused = await fan.open_streams(server, n, deliveries)
        await server.wait_idle()
        rss_open = server.rss_bytes()
        sampler = ConnectionSampler(fan.stack.database, fan.stack.database)
        admin = await asyncpg.connect(admin_dsn_for(fan.stack.database))
        try:
            conns_idle, _, idle_names = await sampler.once(admin)
        finally:
            await admin.close()
        phases.mark(f"{n} streams: open")

        xacts_before = await database_xacts(fan.stack.database)
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        recorder = None
        if args.profile is not None:
            out = args.profile / f"job-api-sse-{n}.txt"
            fan.profiles.append(out)
            recorder = await _profile.record(server.pid, args.seconds, out)
        t0 = time.perf_counter()
        published = await fan.flow(args.rate, args.seconds, deliveries)
        if recorder is not None:
            await recorder.wait()
        publish_seconds = time.perf_counter() - t0
        # Streams per job: how many deliveries each report should make.
        watching: dict[str, int] = {}
        jobs = list(fan.owners)
        for i in range(len(streams)):
            key = str(jobs[i % len(jobs)])
            watching[key] = watching.get(key, 0) + 1
        expected = sum(watching.get(job, 0) for job, _ in deliveries.sent)
        deadline = time.monotonic() + 10
        while len(deliveries.latencies) < expected and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stop.set()
        await sampling
        rss_end = server.rss_bytes()
        await asyncio.sleep(1.5)  # backends flush their statistics at most once a second
        # The sampler's own queries run in this database too (one transaction per sample).
        xacts = await database_xacts(fan.stack.database) - xacts_before - sampler.samples - 1
        phases.mark(f"{n} streams: flow")
        return PhaseResult(
            streams=n,
            opened=len(streams),
            refused=refused,
            expected=expected,
            latency=LatencySummary.of(deliveries.latencies) if deliveries.latencies else None,
            delivered=len(deliveries.latencies),
            rss_base=rss_base,
            rss_open=rss_open,
            rss_end=rss_end,
            conns_idle=conns_idle,
            conns_idle_names=idle_names,
            conns_max=sampler.max_total,
            conns_busy=sampler.max_busy,
            conns_used=len(sampler.used),
            conns_names=sampler.by_name,
            published=published,
            publish_seconds=publish_seconds,
            xacts=xacts,
        )
    finally:
        for s in streams:
            s.close()
        await server.stop()


# --------------------------------------------------------------------------- report


def mib(b: int) -> float:
    return b / 2**20


def report(results: list[PhaseResult], rate: float) -> None:
    rows: list[list[Any]] = []
    for r in results:
        lat = r.latency
        rows.append(
            [
                f"{r.streams:,} streams",
                f"{r.opened:,}" + (f" ({sum(r.refused.values())} refused)" if r.refused else ""),
                f"{r.delivered:,}/{r.expected:,}",
                lat.p50 if lat else "-",
                lat.p95 if lat else "-",
                lat.p99 if lat else "-",
                lat.max if lat else "-",
            ]
        )
    print(
        table(
            ["phase", "open", "delivered/expected", "p50 ms", "p95 ms", "p99 ms", "max ms"],
            rows,
        )
    )
    print()
    print(
        table(
            [
                "phase",
                "RSS base MiB",
                "RSS open MiB",
                "RSS after flow MiB",
                "KiB/stream",
                "DB conns idle",
                "DB conns max",
                "DB busy max",
                "DB conns used",
                "DB xacts/report",
            ],
            [
                [
                    f"{r.streams:,} streams",
                    mib(r.rss_base),
                    mib(r.rss_open),
                    mib(r.rss_end),
                    (r.rss_open - r.rss_base) / max(1, r.opened) / 1024,
                    r.conns_idle,
                    r.conns_max,
                    r.conns_busy,
                    r.conns_used,
                    r.xacts / max(1, r.published),
                ]
                for r in results
            ],
        )
    )
    for r in results:
        print(
            f"{r.streams:,} streams: {r.published:,} reports in {r.publish_seconds:.1f} s "
            f"({r.published / r.publish_seconds:.0f}/s, target rate {rate:g}/s); DB connections "
            f"by application_name, idle {r.conns_idle_names}, max during flow {r.conns_names}"
            + (f"; refused streams by status: {r.refused}" if r.refused else "")
        )
    print()
    largest, smallest = results[-1], results[0]
    if largest.latency is not None:
        p99 = largest.latency.p99
        print(
            f"target p99 delivery < 250 ms at {largest.streams:,} streams : "
            f"{verdict(p99 < 250 and largest.delivered == largest.expected)} ({p99:.1f} ms, "
            f"{largest.delivered:,}/{largest.expected:,} delivered)"
        )
    else:
        print(
            f"target p99 delivery < 250 ms at {largest.streams:,} streams : MISS (nothing arrived)"
        )
    if len(results) > 1:
        # Within one connection: the progress consumer's writes and the streams' wake-up reads
        # share the pool, and whether two of them ever overlap during the flow is chance. A
        # design whose connections or reads followed the streams would be ten times over.
        xacts_small = smallest.xacts / max(1, smallest.published)
        xacts_large = largest.xacts / max(1, largest.published)
        same = (
            largest.conns_used <= smallest.conns_used + 1
            and largest.conns_max <= smallest.conns_max + 1
            and xacts_large <= 1.5 * xacts_small
        )
        print(
            f"target DB connections constant in streams    : {verdict(same)} "
            f"(used during the flow: {smallest.conns_used} at {smallest.streams:,} streams, "
            f"{largest.conns_used} at {largest.streams:,}; held at most {smallest.conns_max} "
            f"and {largest.conns_max}; transactions per report {xacts_small:.2f} and "
            f"{xacts_large:.2f}; bound: +1 connection, 1.5x transactions)"
        )
    for r in results:
        print(
            f"memory per stream at {r.streams:,} streams          : "
            f"{(r.rss_open - r.rss_base) / max(1, r.opened) / 1024:.1f} KiB (reported, no target)"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 s of reports per phase, not 20")
    parser.add_argument("--streams", default="100,1000", help="stream counts, comma-separated")
    parser.add_argument("--rate", type=float, default=200, help="progress reports per second")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record job-api during each flow with py-spy into DIR and print a summary",
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    args.seconds = args.seconds or (5.0 if args.quick else 20.0)
    counts = [int(c) for c in args.streams.split(",") if c.strip()]
    if args.profile is not None and not _profile.available():
        raise SystemExit("--profile needs py-spy: uv pip install py-spy")
    quiet_logging()
    raise_fd_limit()
    print(
        f"sse fan-out: {counts} streams over {args.jobs} jobs, {args.rate:g} reports/s for "
        f"{args.seconds:g} s per phase, a fresh job-api per phase; {machine_note()}"
    )
    phases = Phases()
    results: list[PhaseResult] = []
    async with bench_stack("sse") as stack:
        phases.mark("set-up")
        fan = Fanout(stack, args)
        try:
            for n in counts:
                results.append(await run_phase(fan, n, phases))
        finally:
            await fan.close()
    phases.mark("clean-up")
    print()
    report(results, args.rate)
    print(phases.line())
    for out in fan.profiles:
        print()
        print(_profile.summary(out))


if __name__ == "__main__":
    asyncio.run(main())
