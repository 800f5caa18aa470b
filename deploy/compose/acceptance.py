"""The acceptance flow scripts/compose-test.sh runs against the compose stack, through the gateway.

A user uploads embedding pairs, creates an embedding job that the bundled CPU worker container
trains; while it runs, job-api's container and then the broker's are restarted (the job must still
complete); the registered model is deployed and answers /v1/embeddings. Each step prints its time.
Environment: BASE_URL (the gateway), FTD_TOKEN (a bearer token of user FTD_USER), PROJECT (the
compose project, to find the containers).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

BASE_URL = os.environ["BASE_URL"]
PROJECT = os.environ["PROJECT"]
JOB_TIMEOUT_S = float(os.environ.get("FTD_COMPOSE_JOB_TIMEOUT_S", "1200"))
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


def step(name: str, started: float) -> None:
    print(f"  {name:<44} {time.monotonic() - started:6.1f}s", flush=True)


def fail(message: str) -> None:
    print(f"acceptance: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 2.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            got = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last, got = exc, None
        if got:
            return got
        time.sleep(interval)
    fail(f"{what} not reached within {timeout:.0f}s (last error: {last!r})")


PODMAN = shutil.which("podman") or "/usr/bin/podman"


def podman(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """podman with these arguments (the command line is this module's own, no user input)."""
    return subprocess.run([PODMAN, *argv], check=check, capture_output=True, text=True)  # noqa: S603


def container(service: str) -> str:
    names = podman(
        "ps",
        "-a",
        "--filter",
        f"label=io.podman.compose.project={PROJECT}",
        "--filter",
        f"label=com.docker.compose.service={service}",
        "--format",
        "{{.Names}}",
    ).stdout.split()
    if len(names) != 1:
        fail(f"expected one container of {service}, found {names}")
    return names[0]


def address(service: str) -> str:
    """The container's address on the stack's network."""
    return podman(
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        container(service),
    ).stdout.strip()


def restart(service: str, ready: Callable[[], bool]) -> None:
    started = time.monotonic()
    before = address(service)
    podman("restart", "-t", "20", container(service))
    wait_for(ready, 240, f"{service} ready again after its restart")
    step(f"restart {service} (until ready again)", started)
    print(f"  {service} address: {before} before the restart, {address(service)} after", flush=True)


def in_container(service: str, *argv: str) -> bool:
    return podman("exec", container(service), *argv, check=False).returncode == 0


def job_api_ready() -> bool:
    return in_container(
        "job-api",
        "python",
        "-c",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=3)",
    )


def broker_ready() -> bool:
    return in_container(
        "rabbitmq",
        "bash",
        "-c",
        "test -f /tmp/ftd-rabbitmq-ready && rabbitmq-diagnostics -q check_port_connectivity",
    )


def pairs_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["anchor", "positive"])
    rows = [[f"what is {k}?", v] for k, v in TOPICS.items()]
    rows += [[f"tell me about {k}", v] for k, v in TOPICS.items()]
    writer.writerows(rows * 4)
    return out.getvalue().encode()


def main() -> None:
    headers = {"Authorization": f"Bearer {os.environ['FTD_TOKEN']}"}
    with httpx.Client(base_url=BASE_URL, headers=headers, timeout=120) as client:
        started = time.monotonic()
        r = client.post(
            "/api/finetune/upload",
            data={"job_type": "embedding"},
            files={"file": ("pairs.csv", pairs_csv(), "text/csv")},
        )
        if r.status_code != 201:
            fail(f"upload answered {r.status_code}: {r.text}")
        dataset = r.json()["data"]
        step("upload (data-service, S3)", started)

        catalogue = client.get("/api/finetune/base-models").json()["data"]
        models = next(t["models"] for t in catalogue if t["job_type"] == "embedding")
        offline = [m["id"] for m in models if m.get("offline")]
        if not offline:
            fail(f"no offline embedding base model in the catalogue: {models}")
        started = time.monotonic()
        body = {
            "job_type": "embedding",
            "base_model": offline[0],
            "training_data_url": dataset["training_data_url"],
            "output_model": f"{os.environ.get('FTD_USER', 'compose-alice')}/compose-embedder",
            "gpu_provider": "local",
            # Epochs enough for the job to outlast two container restarts.
            "hyperparameters": {
                "epochs": int(os.environ.get("FTD_COMPOSE_EPOCHS", "40")),
                "batch_size": 4,
                "learning_rate": 1e-4,
                "eval_split": 0.25,
                "max_seq_length": 32,
            },
        }
        deadline = time.monotonic() + 60
        while True:
            r = client.post("/api/finetune/jobs", json=body)
            if r.status_code == 409 and time.monotonic() < deadline:
                time.sleep(float(r.headers.get("Retry-After", "1")))
                continue
            break
        if r.status_code != 201:
            fail(f"job creation answered {r.status_code}: {r.text}")
        job_id = r.json()["data"]["id"]

        def job() -> dict[str, Any]:
            r = client.get(f"/api/finetune/jobs/{job_id}")
            if r.status_code != 200:
                raise ValueError(f"GET the job answered {r.status_code}: {r.text[:200]}")
            data: dict[str, Any] = r.json()["data"]
            return data

        wait_for(lambda: job()["status"] != "pending", 300, "the worker taking the job")
        step("job created and taken by the worker", started)

        restart("job-api", job_api_ready)
        # The gateway reaches the restarted job-api (nginx resolved its name once, at its start:
        # docker-compose.yml gives the gateway's upstreams fixed addresses).
        started = time.monotonic()
        wait_for(lambda: job()["status"], 30, "a call through the gateway to the restarted job-api")
        step("GET through the gateway, job-api restarted", started)
        restart("rabbitmq", broker_ready)
        # job-api may still be reconnecting to the broker: ask until it answers.
        status = wait_for(lambda: job()["status"], 120, "job-api answering after the restarts")
        print(f"  job status after both restarts: {status}", flush=True)
        if status != "running":
            fail(f"the job was {status} once both restarts were done, not running: not mid-job")

        started = time.monotonic()
        done = wait_for(
            lambda: (j := job())["status"] in {"completed", "failed", "cancelled"} and j,
            JOB_TIMEOUT_S,
            "the job's end",
            interval=5,
        )
        if done["status"] != "completed":
            fail(f"the job ended {done['status']}: {done}")
        step("job completed (after the restarts)", started)

        started = time.monotonic()
        model = wait_for(
            lambda: next(
                (
                    m
                    for m in client.get("/api/models", params={"limit": 100}).json()["data"]
                    if m["job_id"] == job_id
                ),
                None,
            ),
            120,
            "the registered model",
        )
        r = client.post(f"/api/models/{model['id']}/deploy")
        if r.status_code != 200:
            fail(f"deploy answered {r.status_code}: {r.text}")

        def loaded() -> bool:
            listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
            return bool(listed.get(model["name"], {}).get("ftd_loaded"))

        wait_for(loaded, 300, f"{model['name']} loaded by model-server")
        step("model registered, deployed and loaded", started)

        started = time.monotonic()
        r = client.post(
            "/v1/embeddings",
            json={"model": model["name"], "input": ["what is a cat?", "the moon"]},
        )
        if r.status_code != 200:
            fail(f"/v1/embeddings answered {r.status_code}: {r.text}")
        vectors = [d["embedding"] for d in r.json()["data"]]
        if len(vectors) != 2 or not all(len(v) == 384 for v in vectors):
            fail(f"/v1/embeddings gave {len(vectors)} vectors of {[len(v) for v in vectors]}")
        step("/v1/embeddings: 2 vectors of 384", started)
    print("acceptance: passed", flush=True)


if __name__ == "__main__":
    main()
