"""HTTP throughput: job-api against the honest floor (and a bare echo app), served the same way.

Three servers run as subprocesses, one at a time, with the same uvicorn settings (one worker
process, the same logging set-up, uvicorn's access log off and job-api's own with
FTD_ACCESS_LOG=false):

  bare echo  bench/_bare_app.py     GET /item (a small dict), POST /echo (body validated, echoed):
                                    no I/O at all, for reference only
  floor      bench/_floor_app.py    FastAPI + PyJWT HS256 + a raw asyncpg pool of the same size as
                                    job-api's: GET = one SELECT by id and owner; POST = one
                                    transaction INSERTing the job and an outbox row
  job-api    `job-api serve`        everything on (relay, consumers, RPC server, watchdog);
                                    GET /api/finetune/jobs/{id}, POST /api/finetune/jobs

Load: `wrk -t1 -cN` (keep-alive; Lua for the POST body and the Authorization header, a real JWT),
each run after a 1 s warm-up. The floor and job-api run side by side on the same database and
are measured in alternating rounds (full: 3 rounds of 5 s per server and route; --quick: one of
3 s), each run only once both servers are idle (job-api's relay done with the last POSTs), so a
load swing on a shared machine hits both alike. `--profile DIR` records each server's first round
with py-spy and prints where its CPU time went.
Without wrk (`apt-get install -y wrk`) a closed loop of httpx tasks in this process is used, which
saturates before the servers: the script then says the ratios are not meaningful.

Targets (issue 5): GET >= 0.7 x floor, POST >= 0.5 x floor, job-api p99 <= 1.5 x the floor's p99
(each route). A miss is printed, never raised.

  uv run python bench/api_throughput.py [--quick] [--duration S] [--rounds R] [--connections N]
                                        [--profile DIR] [--server-env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _profile
import httpx
from _common import (
    Server,
    add_server_env_option,
    bare_app_server,
    bench_stack,
    floor_app_server,
    have_wrk,
    job_api_server,
    job_body,
    machine_note,
    percentile,
    quiet_logging,
    raise_fd_limit,
    server_env,
    table,
    verdict,
)


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    # CPU time the server process used during the run (user + system), when known.
    cpu_s: float = float("nan")

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else float("nan")


_LUA = """
wrk.method = {method}
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,"
    .. "\\"errors\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def _lua_string(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for ASCII text


def _wrk(
    argv: list[str], script: str, url: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        return subprocess.run(
            [*argv, "-s", f.name, url], capture_output=True, text=True, timeout=timeout, check=False
        )
    finally:
        Path(f.name).unlink(missing_ok=True)


def generator_name() -> str:
    if not shutil.which("wrk"):
        return "an httpx closed loop (wrk is not installed)"
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False).stdout
    return f"wrk {version.split()[1] if len(version.split()) > 1 else ''}".strip()


async def run_wrk(
    url: str,
    *,
    method: str,
    body: str | None,
    headers: dict[str, str],
    duration: float,
    connections: int,
) -> Load:
    auth = "\n".join(
        f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()
    )
    script = _LUA.format(
        method=_lua_string(method), body=_lua_string(body) if body else "nil", auth=auth
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s"]
    proc = await asyncio.to_thread(_wrk, argv, script, url, duration + 60)
    match = re.search(r"WRKJSON (\{.*\})", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stdout}\n{proc.stderr}")
    data = json.loads(match.group(1))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["errors"],
    )


async def run_httpx(
    url: str,
    *,
    method: str,
    body: str | None,
    headers: dict[str, str],
    duration: float,
    connections: int,
) -> Load:
    """Fallback closed loop: `connections` tasks, one keep-alive connection each."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    hdrs = {**headers, "Content-Type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        stop = time.perf_counter() + duration

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, url, content=body, headers=hdrs)
                    if r.status_code >= 400:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return Load(
        requests=len(latencies),
        seconds=elapsed,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
    )


async def load(
    server: Server,
    path: str,
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    duration: float,
    connections: int,
    profile: Path | None = None,
) -> Load:
    """A 1 s warm-up, then the measured run (recorded by py-spy into `profile` if given)."""
    run = run_wrk if have_wrk() else run_httpx
    url = server.base_url + path
    await run(
        url, method=method, body=body, headers=headers or {}, duration=1, connections=connections
    )
    recorder = await _profile.record(server.pid, duration, profile) if profile else None
    cpu_before = server.cpu_seconds()
    result = await run(
        url,
        method=method,
        body=body,
        headers=headers or {},
        duration=duration,
        connections=connections,
    )
    result = dataclasses.replace(result, cpu_s=server.cpu_seconds() - cpu_before)
    if recorder is not None:
        await recorder.wait()
    return result


async def first_job(server: Server, headers: dict[str, str]) -> str:
    """POST one job and GET it back (checks the routes work); returns its id."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30) as client:
        created = await client.post("/api/finetune/jobs", json=job_body(0))
        if created.status_code != 201:
            raise RuntimeError(
                f"{server.name}: POST answered {created.status_code}: {created.text}\n"
                f"{server.log_tail()}"
            )
        job_id = str(created.json()["data"]["id"])
        check = await client.get(f"/api/finetune/jobs/{job_id}")
        if check.status_code != 200:
            raise RuntimeError(f"{server.name}: GET answered {check.status_code}: {check.text}")
    return job_id


def combine(runs: list[Load]) -> Load:
    """Rounds of one server and route: requests/s over all rounds, the median round's p50/p99."""
    p50s = sorted(r.p50_ms for r in runs)
    p99s = sorted(r.p99_ms for r in runs)
    return Load(
        requests=sum(r.requests for r in runs),
        seconds=sum(r.seconds for r in runs),
        p50_ms=p50s[len(p50s) // 2],
        p99_ms=p99s[len(p99s) // 2],
        errors=sum(r.errors for r in runs),
        cpu_s=sum(r.cpu_s for r in runs),
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="one round of 3 s runs instead of three of 5 s"
    )
    parser.add_argument("--duration", type=float, default=None, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--pool-size", type=int, default=20, help="the floor's asyncpg pool (job-api's default: 20)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="record each server's first round with py-spy into DIR and print a summary",
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 5.0)
    rounds = args.rounds or (1 if args.quick else 3)
    conns = args.connections
    quiet_logging()
    raise_fd_limit()
    if args.profile is not None and not _profile.available():
        raise SystemExit("--profile needs py-spy: uv pip install py-spy")
    print(
        f"api throughput: {conns} connections, {rounds} round(s) of {duration:g} s runs per "
        f"server and route, floor and job-api alternating; load from {generator_name()}; "
        f"{machine_note()}"
    )
    body = json.dumps(job_body(0))
    bare_runs: dict[str, Load] = {}
    bare = bare_app_server()
    await bare.start()
    try:
        bare_runs["GET"] = await load(bare, "/item", duration=duration, connections=conns)
        bare_runs["POST"] = await load(
            bare, "/echo", method="POST", body=body, duration=duration, connections=conns
        )
    finally:
        await bare.stop()

    runs: dict[tuple[str, str], list[Load]] = {}
    profiles: list[Path] = []
    async with bench_stack("api") as stack:
        headers = stack.user_headers()
        servers = {
            "floor": floor_app_server(stack, pool_size=args.pool_size),
            # job-api's own access-log middleware off: the floor logs no requests either.
            "job-api": job_api_server(stack, FTD_ACCESS_LOG="false", **server_env(args)),
        }
        started: list[Server] = []
        try:
            for server in servers.values():
                await server.start()
                started.append(server)
            paths = {name: await first_job(s, headers) for name, s in servers.items()}
            for r in range(rounds):
                order = list(servers) if r % 2 == 0 else list(reversed(servers))
                for route in ("GET", "POST"):
                    for name in order:
                        for s in servers.values():
                            await s.wait_idle()  # e.g. job-api's relay done with the last POSTs
                        out = None
                        if args.profile is not None and r == 0:
                            out = args.profile / f"{name}-{route.lower()}.txt"
                            profiles.append(out)
                        path = "/api/finetune/jobs" + (f"/{paths[name]}" if route == "GET" else "")
                        runs.setdefault((name, route), []).append(
                            await load(
                                servers[name],
                                path,
                                method=route,
                                body=body if route == "POST" else None,
                                headers=headers,
                                duration=duration,
                                connections=conns,
                                profile=out,
                            )
                        )
        finally:
            for server in started:
                await server.stop()

    results = {key: combine(value) for key, value in runs.items()}
    print()
    print(
        table(
            [
                "server / route",
                "requests",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "CPU ms/req",
                "req/s by round",
            ],
            [
                [
                    f"bare echo {route}",
                    r.requests,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors,
                    r.cpu_ms_per_request,
                    "-",
                ]
                for route, r in bare_runs.items()
            ]
            + [
                [
                    f"{name} {route}",
                    r.requests,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.errors,
                    r.cpu_ms_per_request,
                    " ".join(f"{x.rps:,.0f}" for x in runs[(name, route)]),
                ]
                for (name, route), r in results.items()
            ],
        )
    )
    print("(p50/p99 of several rounds: the median round's)")
    errors = sum(r.errors for r in results.values())
    print()
    if not have_wrk():
        print(
            "warning: without wrk the Python load generator saturates first (it shares the CPU "
            "and is slower than the servers): the ratios below are not meaningful; install wrk."
        )
    rows = []
    verdicts = []
    for route, rps_target in (("GET", 0.7), ("POST", 0.5)):
        floor, job = results[("floor", route)], results[("job-api", route)]
        ratio, p99 = job.rps / floor.rps, job.p99_ms / floor.p99_ms
        cpu = job.cpu_ms_per_request / floor.cpu_ms_per_request
        rows.append(
            [
                route,
                floor.rps,
                job.rps,
                f"{ratio:.2f}x",
                floor.p99_ms,
                job.p99_ms,
                f"{p99:.2f}x",
                f"{cpu:.2f}x",
            ]
        )
        verdicts.append(
            f"target {route:<4} req/s >= {rps_target}x floor : {verdict(ratio >= rps_target)} "
            f"({ratio:.2f}x)"
        )
        verdicts.append(
            f"target {route:<4} p99 <= 1.5x floor's : {verdict(p99 <= 1.5)} ({p99:.2f}x)"
        )
    print(
        table(
            [
                "route",
                "floor req/s",
                "job-api req/s",
                "ratio",
                "floor p99",
                "job-api p99",
                "ratio",
                "CPU/req ratio",
            ],
            rows,
        )
    )
    print(
        "(CPU/req ratio: the server process's CPU time per request, job-api over floor; steadier "
        "than req/s on a busy machine, and 1/ratio is the throughput ratio once both are "
        "CPU-bound)"
    )
    print()
    print("\n".join(verdicts))
    fg, fp = results[("floor", "GET")].rps, results[("floor", "POST")].rps
    jg, jp = results[("job-api", "GET")].rps, results[("job-api", "POST")].rps
    bg, bp = bare_runs["GET"].rps, bare_runs["POST"].rps
    print(
        f"for reference: floor/bare echo GET {fg / bg:.2f}x, POST {fp / bp:.2f}x; "
        f"job-api/bare echo GET {jg / bg:.2f}x, POST {jp / bp:.2f}x"
    )
    if errors:
        print(f"warning: {errors} failed requests (non-2xx, timeouts or socket errors)")
    for out in profiles:
        print()
        print(_profile.summary(out))


if __name__ == "__main__":
    asyncio.run(main())
