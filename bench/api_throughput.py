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
each measurement after a 1 s warm-up. Full runs measure the floor before and after job-api and
compare with the faster floor run (the stricter ratio on a noisy machine).
Without wrk (`apt-get install -y wrk`) a closed loop of httpx tasks in this process is used, which
saturates before the servers: the script then says the ratios are not meaningful.

Targets (issue 5): GET >= 0.7 x floor, POST >= 0.5 x floor, job-api p99 <= 1.5 x the floor's p99
(each route). A miss is printed, never raised.

  uv run python bench/api_throughput.py [--quick] [--duration S] [--connections N]
                                        [--server-env KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import (
    Server,
    Stack,
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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


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
) -> Load:
    run = run_wrk if have_wrk() else run_httpx
    url = server.base_url + path
    await run(
        url, method=method, body=body, headers=headers or {}, duration=1, connections=connections
    )
    return await run(
        url,
        method=method,
        body=body,
        headers=headers or {},
        duration=duration,
        connections=connections,
    )


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


async def measure_jobs_routes(
    server: Server, headers: dict[str, str], *, duration: float, connections: int
) -> tuple[Load, Load]:
    """(GET, POST) of /api/finetune/jobs[/{id}] on a started server."""
    job_id = await first_job(server, headers)
    get = await load(
        server,
        f"/api/finetune/jobs/{job_id}",
        headers=headers,
        duration=duration,
        connections=connections,
    )
    post = await load(
        server,
        "/api/finetune/jobs",
        method="POST",
        body=json.dumps(job_body(0)),
        headers=headers,
        duration=duration,
        connections=connections,
    )
    return get, post


async def run_floor(
    stack: Stack, *, pool_size: int, duration: float, connections: int
) -> tuple[Load, Load]:
    server = floor_app_server(stack, pool_size=pool_size)
    await server.start()
    try:
        return await measure_jobs_routes(
            server, stack.user_headers(), duration=duration, connections=connections
        )
    finally:
        await server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement, one floor run")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--pool-size", type=int, default=20, help="the floor's asyncpg pool (job-api's default: 20)"
    )
    add_server_env_option(parser)
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 10.0)
    conns = args.connections
    quiet_logging()
    raise_fd_limit()
    print(
        f"api throughput: {conns} connections, {duration:g} s per run, load from "
        f"{generator_name()}; {machine_note()}"
    )
    results: dict[str, Load] = {}

    bare = bare_app_server()
    await bare.start()
    try:
        results["bare echo GET /item"] = await load(
            bare, "/item", duration=duration, connections=conns
        )
        results["bare echo POST /echo"] = await load(
            bare,
            "/echo",
            method="POST",
            body=json.dumps(job_body(0)),
            duration=duration,
            connections=conns,
        )
    finally:
        await bare.stop()

    floor_runs: list[tuple[Load, Load]] = []
    async with bench_stack("api") as stack:
        floor_runs.append(
            await run_floor(stack, pool_size=args.pool_size, duration=duration, connections=conns)
        )
        server = job_api_server(stack, FTD_ACCESS_LOG="false", **server_env(args))
        await server.start()
        try:
            job_get, job_post = await measure_jobs_routes(
                server, stack.user_headers(), duration=duration, connections=conns
            )
        finally:
            await server.stop()
        if not args.quick:
            floor_runs.append(
                await run_floor(
                    stack, pool_size=args.pool_size, duration=duration, connections=conns
                )
            )

    for i, (get, post) in enumerate(floor_runs, 1):
        results[f"floor GET  (run {i})"] = get
        results[f"floor POST (run {i})"] = post
    results["job-api GET"] = job_get
    results["job-api POST"] = job_post
    floor_get = max((r[0] for r in floor_runs), key=lambda r: r.rps)
    floor_post = max((r[1] for r in floor_runs), key=lambda r: r.rps)

    print()
    print(
        table(
            ["server / route", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
            [
                [name, r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors]
                for name, r in results.items()
            ],
        )
    )
    get_ratio = job_get.rps / floor_get.rps
    post_ratio = job_post.rps / floor_post.rps
    get_p99 = job_get.p99_ms / floor_get.p99_ms
    post_p99 = job_post.p99_ms / floor_post.p99_ms
    errors = sum(r.errors for r in results.values())
    print()
    if not have_wrk():
        print(
            "warning: without wrk the Python load generator saturates first (it shares the CPU "
            "and is slower than the servers): the ratios below are not meaningful; install wrk."
        )
    print("floor = the faster floor run of each route")
    print(
        table(
            ["route", "floor req/s", "job-api req/s", "ratio", "floor p99", "job-api p99", "ratio"],
            [
                [
                    "GET",
                    floor_get.rps,
                    job_get.rps,
                    f"{get_ratio:.2f}x",
                    floor_get.p99_ms,
                    job_get.p99_ms,
                    f"{get_p99:.2f}x",
                ],
                [
                    "POST",
                    floor_post.rps,
                    job_post.rps,
                    f"{post_ratio:.2f}x",
                    floor_post.p99_ms,
                    job_post.p99_ms,
                    f"{post_p99:.2f}x",
                ],
            ],
        )
    )
    print()
    print(f"target GET  req/s >= 0.7x floor : {verdict(get_ratio >= 0.7)} ({get_ratio:.2f}x)")
    print(f"target POST req/s >= 0.5x floor : {verdict(post_ratio >= 0.5)} ({post_ratio:.2f}x)")
    print(f"target GET  p99 <= 1.5x floor's : {verdict(get_p99 <= 1.5)} ({get_p99:.2f}x)")
    print(f"target POST p99 <= 1.5x floor's : {verdict(post_p99 <= 1.5)} ({post_p99:.2f}x)")
    bare_get = results["bare echo GET /item"].rps
    bare_post = results["bare echo POST /echo"].rps
    print(
        f"for reference: floor/bare echo GET {floor_get.rps / bare_get:.2f}x, "
        f"POST {floor_post.rps / bare_post:.2f}x; job-api/bare echo GET {job_get.rps / bare_get:.2f}x, "
        f"POST {job_post.rps / bare_post:.2f}x"
    )
    if errors:
        print(f"warning: {errors} failed requests (non-2xx, timeouts or socket errors)")


if __name__ == "__main__":
    asyncio.run(main())
