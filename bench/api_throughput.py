"""HTTP throughput: job-api under uvicorn against a bare FastAPI app served the same way.

Both servers run as subprocesses, one at a time, with the same uvicorn settings (one worker
process, the same logging set-up, access log off: uvicorn's, and job-api's own middleware with
FTD_ACCESS_LOG=false): job-api as `job-api serve` (relay, consumers, RPC server, watchdog all
running), the baseline as bench/_bare_app.py.

Load: `wrk` (one thread, 64 connections, keep-alive; Lua for the POST body and the auth header)
when it is installed (`apt-get install -y wrk`), otherwise a closed loop of 64 httpx.AsyncClient
tasks in this process, which is slower than both servers on a small machine: then the numbers
measure the load generator, and the script says so.
Each measurement is preceded by a 1 s warm-up run.

  job-api GET   /api/finetune/jobs/{id}   a real job, a real JWT (one row read)
  job-api POST  /api/finetune/jobs        job row + history row + outbox rows, relayed to the broker
  bare    GET   /item                     a small dict
  bare    POST  /echo                     the same JSON body, validated and echoed

Targets: GET >= 0.5 x bare GET, POST >= 0.25 x bare POST, p99 < 50 ms (job-api, both routes).

  uv run python bench/api_throughput.py [--quick] [--duration S] [--connections N]
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
    bare_app_server,
    bench_stack,
    have_wrk,
    job_api_server,
    job_body,
    machine_note,
    percentile,
    quiet_logging,
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per measurement instead of 10 s")
    parser.add_argument("--duration", type=float, default=None)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    duration = args.duration or (3.0 if args.quick else 10.0)
    conns = args.connections
    quiet_logging()
    generator = generator_name()
    print(
        f"api throughput: {conns} connections, {duration:g} s per run, load from {generator}; "
        f"{machine_note()}"
    )
    body = json.dumps(job_body(0))
    results: dict[str, Load] = {}

    bare = bare_app_server()
    await bare.start()
    try:
        results["bare GET"] = await load(bare, "/item", duration=duration, connections=conns)
        results["bare POST"] = await load(
            bare, "/echo", method="POST", body=body, duration=duration, connections=conns
        )
    finally:
        await bare.stop()

    async with bench_stack("api") as stack:
        # job-api's own access-log middleware off: the bare app logs no requests either.
        server = job_api_server(stack, FTD_ACCESS_LOG="false")
        await server.start()
        try:
            headers = stack.user_headers()
            async with httpx.AsyncClient(base_url=server.base_url, headers=headers) as client:
                created = await client.post("/api/finetune/jobs", json=job_body(0))
                if created.status_code != 201:
                    raise RuntimeError(
                        f"POST answered {created.status_code}: {created.text}\n{server.log_tail()}"
                    )
                job_id = created.json()["data"]["id"]
                check = await client.get(f"/api/finetune/jobs/{job_id}")
                if check.status_code != 200:
                    raise RuntimeError(f"GET answered {check.status_code}: {check.text}")
            results["job-api GET"] = await load(
                server,
                f"/api/finetune/jobs/{job_id}",
                headers=headers,
                duration=duration,
                connections=conns,
            )
            results["job-api POST"] = await load(
                server,
                "/api/finetune/jobs",
                method="POST",
                body=body,
                headers=headers,
                duration=duration,
                connections=conns,
            )
        finally:
            await server.stop()

    print()
    print(
        table(
            ["route", "requests", "req/s", "p50 ms", "p99 ms", "errors"],
            [
                [name, r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors]
                for name, r in results.items()
            ],
        )
    )
    get_ratio = results["job-api GET"].rps / results["bare GET"].rps
    post_ratio = results["job-api POST"].rps / results["bare POST"].rps
    p99 = max(results["job-api GET"].p99_ms, results["job-api POST"].p99_ms)
    errors = sum(r.errors for r in results.values())
    print()
    if not have_wrk():
        print(
            "warning: without wrk the Python load generator saturates first (it shares the CPU "
            "and is slower than both servers): the ratios below are not meaningful; install wrk."
        )
    print(f"ratio GET  job-api/bare = {get_ratio:.2f}x")
    print(f"ratio POST job-api/bare = {post_ratio:.2f}x")
    print(f"target GET  >= 0.5x bare     : {verdict(get_ratio >= 0.5)} ({get_ratio:.2f}x)")
    print(f"target POST >= 0.25x bare    : {verdict(post_ratio >= 0.25)} ({post_ratio:.2f}x)")
    print(
        f"target job-api p99 < 50 ms   : {verdict(p99 < 50)} (GET {results['job-api GET'].p99_ms:.1f} ms,"
        f" POST {results['job-api POST'].p99_ms:.1f} ms)"
    )
    if errors:
        print(f"warning: {errors} failed requests (non-2xx, timeouts or socket errors)")


if __name__ == "__main__":
    asyncio.run(main())
