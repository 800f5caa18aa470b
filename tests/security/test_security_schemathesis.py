"""Every service's OpenAPI document tells the truth through the gateway: schemathesis reads each
document where the gateway serves it (`/openapi/<service>.json`) and sends every request through
nginx to the running stack, with EVERY check on, `ignored_auth` (an operation that declares a
scheme refuses a request without a credential or with a wrong one) and
`object_level_authorization` (what one user reads of their own, the other may not) included.

Identities come from a Web Fuzzing Commons auth file: two users (peers: neither may see the
other's objects; an operation one is refused moves on to the next) for the user operations, an
enrolled worker for the operations that take a worker's credential (a run of their own). A fixed
seed, `GATEWAY_EXAMPLES` cases per operation.

The stack's CPU worker is stopped during the runs (their jobs would keep it busy for nothing) and
started again afterwards; what the runs left pending is cancelled."""

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from ftd_stack import _worker_consuming
from schemathesis_run import run_schemathesis
from security_stack import SecurityStack, client
from security_workers import Enrolled, create_job, enroll, job_request, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

GATEWAY_EXAMPLES = int(os.environ.get("FTD_SCHEMATHESIS_GATEWAY_EXAMPLES", "100"))
USERS = ("st-alice", "st-bob")
EXTERNAL = "https://storage.googleapis.com/ftd-examples/pairs.csv"

# A live stream never ends: it is judged on its first event (the snapshot).
STREAMS = "max-stream-events = 1\n"
PEERS = f"""
[auth.wfc]
path = "users.json"
peers = {json.dumps(list(USERS))}
"""
WORKER = """
[auth.wfc]
path = "users.json"
"""
JOBS = """
[[operations]]
include-path = "/api/finetune/jobs"
include-method = "POST"
# Checked after the schema, and documented: an output name in someone else's namespace (422
# output_namespace_not_yours), a data URL naming an internal host (422 data_url_refused), a
# dataset that is not there (404).
# (400: schemathesis has been seen applying this block to POST /v1/fine_tuning/jobs too, whose
# refusals are OpenAI's 400s.)
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "403", "404", "409", "422"]
"""
UPLOAD = """
[[operations]]
include-path = "/api/finetune/upload"
# A file's content (encoding, columns, rows) is checked after the schema: a schema-valid upload
# of a file that is not a dataset is the documented 422 `invalid_dataset`.
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "400", "401", "403", "404", "409", "413", "415", "422", "429",
]
"""
# (The first block matching an operation applies: these come before the platform's own.)
# OpenAI's files and fine-tuning routes follow OpenAI's convention: what is refused after the schema
# (a file that is not a dataset, a training_file or model that is not there, a file not announced
# yet) is a 400, 404 or 409, in OpenAI's error shape.
OPENAI_FILES = """
[[operations]]
include-path-regex = "^/v1/files"
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "400", "401", "404", "409", "413", "415", "429",
]
"""
OPENAI_JOBS = """
[[operations]]
include-path-regex = "^/v1/fine_tuning/"
checks.positive_data_acceptance.expected-statuses = ["2XX", "400", "401", "404", "409"]
"""


@dataclass(frozen=True)
class Run:
    name: str
    service: str
    identities: tuple[str, ...]
    config: str
    args: tuple[str, ...] = ()


async def _runs(stack: SecurityStack) -> list[Run]:
    """job-api's operations that take a worker's credential (scheme `workerKey`) run as the
    worker, the others as the users."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        document = (await http.get("/openapi/job-api.json")).json()
    worker_operations = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if any("workerKey" in scheme for scheme in operation.get("security", []))
    ]
    assert len(worker_operations) >= 3, worker_operations
    return [
        Run(
            "job-api",
            "job-api",
            USERS,
            STREAMS + PEERS + OPENAI_JOBS + JOBS,
            tuple(a for name in worker_operations for a in ("--exclude-name", name)),
        ),
        Run(
            "job-api workers",
            "job-api",
            ("worker",),
            WORKER,
            tuple(a for name in worker_operations for a in ("--include-name", name)),
        ),
        Run("data-service", "data-service", USERS, PEERS + OPENAI_FILES + UPLOAD),
        Run("registry-service", "registry-service", USERS, PEERS),
    ]


async def _seed(stack: SecurityStack, worker: Enrolled) -> None:
    """Objects of each user for the runs to find in their lists and read, change and delete (a
    document's 2xx answers are checked on real objects too): a dataset, a pending job, a
    registered model (a job the worker completed), a private worker."""
    rows = "".join(f"what is {i}?,{i} is a number\n" for i in range(12))
    for user in USERS:
        async with client(stack, user) as http:
            r = await http.post(
                "/api/finetune/upload",
                data={"job_type": "embedding"},
                files={"file": ("pairs.csv", f"anchor,positive\n{rows}".encode(), "text/csv")},
            )
            assert r.status_code == 201, r.text
            await create_job(http, job_request(f"{user}/seeded", EXTERNAL))
            done = await create_job(http, job_request(f"{user}/seeded-model", EXTERNAL))
            for update in ({"status": "running"}, {"status": "completed"}):
                r = await http.patch(
                    f"/api/finetune/jobs/{done['id']}", json=update, headers=worker.bearer
                )
                assert r.status_code == 200, r.text

            async def registered(http: httpx.AsyncClient = http) -> list[dict[str, str]]:
                models: list[dict[str, str]] = (await http.get("/api/models")).json()["data"]
                return models

            await poll(registered, timeout=60, what="the seeded model")
            await enroll(stack, f"{user}-seeded", owner=user)


async def _cancel_what_is_left(stack: SecurityStack) -> None:
    """Every job of the runs' users that has not ended is cancelled (page by page: a cancelled
    job leaves the filtered list)."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        for user in USERS:
            headers = stack.headers(user)
            for status in ("pending", "running"):
                for _ in range(100):
                    r = await http.get(
                        "/api/finetune/jobs",
                        params={"status": status, "limit": 200},
                        headers=headers,
                    )
                    jobs = r.json()["data"]
                    if not jobs:
                        break
                    for job in jobs:
                        await http.delete(f"/api/finetune/jobs/{job['id']}", headers=headers)


async def test_every_document_matches_the_running_stack_through_the_gateway(
    stack: SecurityStack, tmp_path: Path
) -> None:
    worker = await enroll(stack, "schemathesis-worker")
    tokens = {user: stack.token(user) for user in USERS} | {"worker": worker.token}
    await _seed(stack, worker)
    reports: dict[str, str] = {}
    failed: list[str] = []
    stack.stack.kill_worker()
    try:
        for run in await _runs(stack):
            folder = tmp_path / run.name.replace(" ", "-")
            folder.mkdir()
            users = [
                {
                    "name": name,
                    "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {tokens[name]}"}],
                }
                for name in run.identities
            ]
            (folder / "users.json").write_text(json.dumps({"auth": users}))
            started = time.monotonic()
            status, report = await run_schemathesis(
                f"{stack.base_url}/openapi/{run.service}.json",
                run.config,
                folder,
                timeout=400,
                max_examples=GATEWAY_EXAMPLES,
                exclude_checks=(),
                base_url=stack.base_url,
                request_timeout=10,
                args=run.args,
            )
            reports[run.name] = f"{report}\n({run.name}: {time.monotonic() - started:.0f} s)"
            if status != 0:
                failed.append(run.name)
    finally:
        stack.restart("job-api")
        await _cancel_what_is_left(stack)
        stack.stack.start_worker()
        await _worker_consuming(
            stack.stack.env["FTD_BROKER_PREFIX"],
            ("embedding", "classifier"),
            stack.stack.processes["worker"],
        )
    for name, report in reports.items():
        print(f"===== {name}\n{report}")  # the whole reports, shown when the test fails
    assert not failed, "\n".join(reports[name][-4000:] for name in failed)
