"""Every HTTP route of job-api, its success body and each error code, against the whole app.

Errors always come as `{"error": {"code", "message", "details"}}`; a rejected request leaves no
job, history row or outbox row behind; no response ever carries the worker key or the JWT secret.
"""

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import (
    JWT_SECRET,
    WORKER_HEADERS,
    WORKER_KEY,
    eventually,
    job_body,
    running_app,
    user_headers,
)

from contracts.enums import JobType
from contracts.events import DatasetDeleted, DatasetValidated, Envelope, EventPayload
from contracts.routing import dataset_ref
from job_api.config import Settings
from servicekit.auth import mint_token

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
ALICE = user_headers("alice")
BOB = user_headers("bob")
ADMIN = user_headers("root", admin=True)

BRIEF_MODELS = {
    "embedding": {
        "intfloat/multilingual-e5-base",
        "intfloat/multilingual-e5-large",
        "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    },
    "classifier": {"bert-base-multilingual-cased", "xlm-roberta-base"},
    "llm_lora": {"meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"},
}
OFFLINE_MODELS = {
    "embedding": {"sentence-transformers/all-MiniLM-L6-v2"},
    "classifier": {"sentence-transformers/all-MiniLM-L6-v2"},
    "llm_lora": {"ftd-local/tiny-llama"},
}


# --- helpers --------------------------------------------------------------------------------


def record_bodies(client: httpx.AsyncClient, bodies: list[str]) -> None:
    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    client.event_hooks["response"].append(keep)


@pytest.fixture
def bodies() -> Iterator[list[str]]:
    """Every response body a test got: none may contain a secret."""
    seen: list[str] = []
    yield seen
    for body in seen:
        assert WORKER_KEY not in body
        assert JWT_SECRET not in body


@pytest.fixture
def client(client: httpx.AsyncClient, bodies: list[str]) -> httpx.AsyncClient:
    """conftest's client, with every response body kept for the secret check."""
    record_bodies(client, bodies)
    return client


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the error envelope with this status and code; return the error object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


async def create(
    client: httpx.AsyncClient, headers: dict[str, str] = ALICE, **overrides: Any
) -> dict[str, Any]:
    response = await client.post(JOBS, json=job_body(**overrides), headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def patch(client: httpx.AsyncClient, job_id: str, **body: Any) -> httpx.Response:
    return await client.patch(f"{JOBS}/{job_id}", json=body, headers=WORKER_HEADERS)


COUNTS = {
    "jobs": sa.text("SELECT count(*) FROM jobs.jobs"),
    "job_events": sa.text("SELECT count(*) FROM jobs.job_events"),
    "outbox": sa.text("SELECT count(*) FROM jobs.outbox"),
}


async def row_counts(db: Any) -> dict[str, int]:
    async with db.connect() as conn:
        return {table: (await conn.execute(query)).scalar_one() for table, query in COUNTS.items()}


async def assert_nothing_left(client: httpx.AsyncClient, db: Any) -> None:
    listed = await client.get(JOBS, headers=ADMIN)
    assert listed.json()["data"] == []
    assert await row_counts(db) == {"jobs": 0, "job_events": 0, "outbox": 0}


def is_presence_row(row: dict[str, Any]) -> bool:
    """The presence monitor notes on a pending job whether any worker serves its queue; no
    worker runs in these tests, so such a row may appear whenever the monitor gets round to it."""
    return row["data"].get("reason") in {"no_worker", "worker_available"}


def without_presence(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in {"phase", "failure_class", "updated_at"}}


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [j["id"] for j in response.json()["data"]]


# --- POST /jobs -----------------------------------------------------------------------------


async def test_create_job(client: httpx.AsyncClient) -> None:
    response = await client.post(
        JOBS,
        json=job_body(
            training_data_url="https://data.example.com/train.csv?X-Signature=s3cr3t&exp=1",
            project_id="p1",
            hyperparameters={"epochs": 5},
        ),
        headers=ALICE,
    )

    assert response.status_code == 201, response.text
    assert set(response.json()) == {"data"}
    job = response.json()["data"]
    uuid.UUID(job["id"])
    assert job["user_id"] == "alice"
    assert job["project_id"] == "p1"
    assert job["status"] == "pending"
    assert job["attempt"] == 0
    assert job["progress"] == 0
    assert job["hyperparameters"]["epochs"] == 5
    assert job["hyperparameters"]["batch_size"] == 16
    assert "lora_r" not in job["hyperparameters"]
    assert job["training_data_url"] == "https://data.example.com/train.csv"
    assert "s3cr3t" not in response.text
    fetched = (await client.get(f"{JOBS}/{job['id']}", headers=ALICE)).json()["data"]
    assert without_presence(fetched) == without_presence(job)


async def test_create_job_fills_lora_defaults(client: httpx.AsyncClient) -> None:
    job = await create(
        client, job_type="llm_lora", base_model="mistralai/Mistral-7B-v0.1", gpu_provider="runpod"
    )
    hp = job["hyperparameters"]
    assert (hp["epochs"], hp["lora_r"], hp["lora_alpha"], hp["batch_size"]) == (1, 16, 32, 4)


async def test_create_job_with_the_briefs_example(client: httpx.AsyncClient) -> None:
    # The brief's `myuser/...` is a namespace of the user `myuser` (names belong to their owner).
    job = await create(
        client,
        user_headers("myuser"),
        base_model="intfloat/multilingual-e5-base",
        output_model="myuser/custom-e5-hr",
        gpu_provider="colab",
    )
    assert (job["job_type"], job["gpu_provider"]) == ("embedding", "colab")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Basic YWxpY2U6cHc="}, "unauthorized"),
        ({"Authorization": "Bearer not-a-jwt"}, "invalid_token"),
        (user_headers("alice", ttl=-3600), "token_expired"),
        (
            {"Authorization": f"Bearer {mint_token('another-secret-0123456789abcdef-x', 'alice')}"},
            "invalid_token",
        ),
        (WORKER_HEADERS, "invalid_token"),
    ],
    ids=["missing", "not-bearer", "garbage", "expired", "other-secret", "worker-key"],
)
async def test_create_job_needs_a_valid_user_token(
    client: httpx.AsyncClient, db: Any, headers: dict[str, str], code: str
) -> None:
    response = await client.post(JOBS, json=job_body(), headers=headers)
    error_of(response, 401, code)
    await assert_nothing_left(client, db)


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"base_model": "meta-llama/Llama-2-7b-hf"}, "unknown_base_model"),
        (
            {"job_type": "classifier", "base_model": "intfloat/multilingual-e5-base"},
            "unknown_base_model",
        ),
        ({"base_model": "gpt2"}, "unknown_base_model"),
        ({"output_model": "noslash"}, "invalid_output_model"),
        ({"output_model": "a/b--c"}, "invalid_output_model"),
        ({"output_model": "a/.b"}, "invalid_output_model"),
        ({"output_model": "a/b/c"}, "invalid_output_model"),
        ({"training_data_url": "http://data.example.com/x.csv"}, "invalid_training_data_url"),
        ({"training_data_url": "ftp://data.example.com/x.csv"}, "invalid_training_data_url"),
        ({"training_data_url": "file:///etc/passwd"}, "invalid_training_data_url"),
        (
            {"training_data_url": "https://user:hunter2@data.example.com/x.csv"},
            "credentials_in_url",
        ),
        ({"training_data_url": "ftd://datasets/not-a-uuid"}, "invalid_dataset_ref"),
        ({"job_type": "vision"}, "validation_error"),
        ({"gpu_provider": "aws"}, "validation_error"),
        ({"priority": "high"}, "validation_error"),
        ({"output_model": ""}, "validation_error"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_create_job_refuses_bad_input(
    client: httpx.AsyncClient, db: Any, overrides: dict[str, Any], code: str
) -> None:
    response = await client.post(JOBS, json=job_body(**overrides), headers=ALICE)

    error = error_of(response, 422, code)
    if code != "validation_error":
        field = next(k for k in overrides if k != "job_type")
        assert error["details"] == {"field": field}
    await assert_nothing_left(client, db)


async def test_create_job_with_an_unknown_dataset_is_409_not_ready_at_once(
    client: httpx.AsyncClient, db: Any
) -> None:
    """A reference job-api's projection does not hold may be an upload whose event is still on
    its way: 409 `dataset_not_ready` with Retry-After, answered at once (the route never waits),
    and nothing is stored."""
    body = job_body(training_data_url=dataset_ref(uuid.uuid4()))
    started = asyncio.get_running_loop().time()
    response = await client.post(JOBS, json=body, headers=ALICE)
    assert asyncio.get_running_loop().time() - started < 1.0
    error = error_of(response, 409, "dataset_not_ready")
    assert response.headers["Retry-After"] == "1"
    assert error["details"] == {"field": "training_data_url", "retry_after": 1}
    await assert_nothing_left(client, db)


async def test_create_job_refuses_missing_fields(client: httpx.AsyncClient, db: Any) -> None:
    body = job_body()
    del body["output_model"]
    response = await client.post(JOBS, json=body, headers=ALICE)
    error = error_of(response, 422, "validation_error")
    assert [d["loc"] for d in error["details"]] == [["body", "output_model"]]
    await assert_nothing_left(client, db)


@pytest.mark.parametrize(
    ("job_type", "base_model", "hyperparameters", "loc"),
    [
        ("embedding", None, {"epochs": 0}, ["hyperparameters", "epochs"]),
        ("embedding", None, {"learning_rate": 1}, ["hyperparameters", "learning_rate"]),
        ("embedding", None, {"warmup_ratio": 0.9}, ["hyperparameters", "warmup_ratio"]),
        ("embedding", None, {"optimizer": "sgd"}, ["hyperparameters", "optimizer"]),
        ("embedding", None, {"lora_r": 8}, ["hyperparameters", "lora_r"]),
        ("classifier", "xlm-roberta-base", {"lora_alpha": 8}, ["hyperparameters", "lora_alpha"]),
        (
            "llm_lora",
            "mistralai/Mistral-7B-v0.1",
            {"lora_r": 0},
            ["hyperparameters", "lora_r"],
        ),
    ],
)
async def test_create_job_refuses_bad_hyperparameters(
    client: httpx.AsyncClient,
    db: Any,
    job_type: str,
    base_model: str | None,
    hyperparameters: dict[str, Any],
    loc: list[str],
) -> None:
    overrides: dict[str, Any] = {"job_type": job_type, "hyperparameters": hyperparameters}
    if base_model:
        overrides["base_model"] = base_model
    response = await client.post(JOBS, json=job_body(**overrides), headers=ALICE)

    error = error_of(response, 422, "invalid_hyperparameters")
    assert isinstance(error["details"], list)
    assert loc in [d["loc"] for d in error["details"]]
    assert all(set(d) == {"loc", "message", "type"} for d in error["details"])
    await assert_nothing_left(client, db)


async def test_external_urls_can_be_refused(
    db: Any, settings_factory: Callable[..., Settings], bodies: list[str]
) -> None:
    async with running_app(settings_factory(allow_external_data_urls=False)) as client:
        record_bodies(client, bodies)
        response = await client.post(JOBS, json=job_body(), headers=ALICE)
        error_of(response, 422, "external_data_url_refused")
        await assert_nothing_left(client, db)


# --- dataset references ---------------------------------------------------------------------


async def test_dataset_references_follow_data_service_events(
    client: httpx.AsyncClient, publisher: Any
) -> None:
    dataset_id = uuid.uuid4()
    ref = dataset_ref(dataset_id)
    # data-service publishes on the public events exchange (a worker's exchange is for reports).
    broker = publisher

    async def publish(payload: EventPayload) -> None:
        await broker.publish(Envelope.wrap(payload, source="data-service"), payload.routing_key())

    await publish(
        DatasetValidated(
            dataset_id=dataset_id,
            user_id="alice",
            filename="train.csv",
            format="csv",
            job_types=[JobType.EMBEDDING],
            rows=10,
            size_bytes=120,
            sha256="0" * 64,
        )
    )

    async def accepted() -> dict[str, Any] | None:
        r = await client.post(JOBS, json=job_body(training_data_url=ref), headers=ALICE)
        if r.status_code == 201:
            data: dict[str, Any] = r.json()["data"]
            return data
        error_of(r, 409, "dataset_not_ready")
        return None

    job = await eventually(accepted)
    assert job["dataset_id"] == str(dataset_id)
    assert job["training_data_url"] == ref

    # Another user's dataset answers exactly as one job-api has never heard of.
    as_bob = await client.post(
        JOBS, json=job_body(training_data_url=ref, output_model="bob/e"), headers=BOB
    )
    error_of(as_bob, 409, "dataset_not_ready")
    classifier = job_body(
        job_type="classifier", base_model="xlm-roberta-base", training_data_url=ref
    )
    error_of(await client.post(JOBS, json=classifier, headers=ALICE), 422, "dataset_incompatible")

    await publish(DatasetDeleted(dataset_id=dataset_id, user_id="alice", reason="x"))

    async def forgotten() -> bool:
        r = await client.post(JOBS, json=classifier, headers=ALICE)
        return r.json()["error"]["code"] == "dataset_not_found"

    await eventually(forgotten)
    again = await client.post(JOBS, json=job_body(training_data_url=ref), headers=ALICE)
    error_of(again, 404, "dataset_not_found")
    assert ids(await client.get(JOBS, headers=ALICE)) == [job["id"]]


async def test_a_job_sent_before_its_dataset_event_is_told_to_retry_and_then_created(
    client: httpx.AsyncClient, publisher: Any
) -> None:
    """data-service's 201 and its `dataset.validated` reaching job-api are milliseconds apart: a
    POST /jobs in between answers at once 409 `dataset_not_ready` (Retry-After: 1), and the same
    request sent again once the event is in creates the job. Bob naming Alice's dataset gets the
    very answer an unknown id gets, whether or not the event is in: it tells nothing about which
    datasets exist."""
    dataset_id = uuid.uuid4()
    ref = dataset_ref(dataset_id)
    body = job_body(training_data_url=ref)
    bobs = job_body(training_data_url=ref, output_model="bob/e")

    early = await client.post(JOBS, json=body, headers=ALICE)
    error_of(early, 409, "dataset_not_ready")
    assert early.headers["Retry-After"] == "1"
    unknown_to_bob = await client.post(JOBS, json=bobs, headers=BOB)
    assert unknown_to_bob.status_code == 409

    payload = DatasetValidated(
        dataset_id=dataset_id,
        user_id="alice",
        filename="train.csv",
        format="csv",
        job_types=[JobType.EMBEDDING],
        rows=10,
        size_bytes=120,
        sha256="0" * 64,
    )
    await publisher.publish(Envelope.wrap(payload, source="data-service"), payload.routing_key())

    async def retried() -> httpx.Response | None:
        r = await client.post(JOBS, json=body, headers=ALICE)
        return r if r.status_code != 409 else None

    created = await eventually(retried)
    assert created.status_code == 201, created.text
    assert created.json()["data"]["dataset_id"] == str(dataset_id)

    known_to_alice = await client.post(JOBS, json=bobs, headers=BOB)
    assert known_to_alice.status_code == unknown_to_bob.status_code
    assert known_to_alice.json() == unknown_to_bob.json()
    assert known_to_alice.headers["Retry-After"] == unknown_to_bob.headers["Retry-After"]


# --- GET /jobs ------------------------------------------------------------------------------


async def test_list_jobs_is_scoped_to_the_caller(client: httpx.AsyncClient) -> None:
    alice_job = await create(client)
    bob_job = await create(client, BOB, output_model="bob/model")

    assert ids(await client.get(JOBS, headers=ALICE)) == [alice_job["id"]]
    assert ids(await client.get(JOBS, headers=BOB)) == [bob_job["id"]]
    assert ids(await client.get(JOBS, headers=user_headers("carol"))) == []
    error_of(await client.get(JOBS), 401, "unauthorized")


async def test_list_jobs_filters(client: httpx.AsyncClient) -> None:
    plain = await create(client)
    in_project = await create(client, project_id="p1")
    classifier = await create(client, job_type="classifier", base_model="xlm-roberta-base")
    on_colab = await create(client, gpu_provider="colab")
    cancelled = await create(client)
    await client.delete(f"{JOBS}/{cancelled['id']}", headers=ALICE)

    async def listed(**params: str) -> set[str]:
        return set(ids(await client.get(JOBS, params=params, headers=ALICE)))

    assert await listed(status="cancelled") == {cancelled["id"]}
    assert await listed(status="pending") == {
        plain["id"],
        in_project["id"],
        classifier["id"],
        on_colab["id"],
    }
    assert await listed(job_type="classifier") == {classifier["id"]}
    assert await listed(project="p1") == {in_project["id"]}
    assert await listed(gpu_provider="colab") == {on_colab["id"]}
    assert await listed(job_type="classifier", gpu_provider="colab") == set()
    error_of(
        await client.get(JOBS, params={"status": "done"}, headers=ALICE), 422, "validation_error"
    )


async def test_list_jobs_pages_with_a_cursor(client: httpx.AsyncClient) -> None:
    created = [(await create(client))["id"] for _ in range(5)]

    seen: list[str] = []
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = await client.get(JOBS, params=params, headers=ALICE)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "next_cursor", "has_more", "limit"}
        pages.append(body)
        seen.extend(j["id"] for j in body["data"])
        if body["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": body["next_cursor"]}

    assert [len(p["data"]) for p in pages] == [2, 2, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert all(p["limit"] == 2 for p in pages)
    assert seen == list(reversed(created))  # newest first, each once


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "not a cursor"},
        {"cursor": "WyJ5ZXN0ZXJkYXkiLCJ4Il0"},  # an old-style opaque cursor
        {"cursor": "1_" + "0" * 31},
        {"cursor": "x" * 2000},
    ],
)
async def test_list_jobs_refuses_a_bad_cursor(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    error_of(await client.get(JOBS, params=params, headers=ALICE), 422, "invalid_cursor")


@pytest.mark.parametrize("limit", [0, -1, 500])
async def test_list_jobs_refuses_a_bad_limit(client: httpx.AsyncClient, limit: int) -> None:
    response = await client.get(JOBS, params={"limit": limit}, headers=ALICE)
    error_of(response, 422, "validation_error")


async def test_only_admins_list_other_users(client: httpx.AsyncClient) -> None:
    alice_job = await create(client)
    bob_job = await create(client, BOB, output_model="bob/model")

    forbidden = await client.get(JOBS, params={"user_id": "bob"}, headers=ALICE)
    error_of(forbidden, 403, "forbidden")
    own = await client.get(JOBS, params={"user_id": "alice"}, headers=ALICE)
    assert ids(own) == [alice_job["id"]]

    assert set(ids(await client.get(JOBS, headers=ADMIN))) == {alice_job["id"], bob_job["id"]}
    assert ids(await client.get(JOBS, params={"user_id": "bob"}, headers=ADMIN)) == [bob_job["id"]]


# --- GET and DELETE /jobs/{id} --------------------------------------------------------------


async def test_get_job(client: httpx.AsyncClient) -> None:
    job = await create(client)
    url = f"{JOBS}/{job['id']}"

    mine = await client.get(url, headers=ALICE)
    assert mine.status_code == 200
    assert mine.json()["data"]["id"] == job["id"]
    error_of(await client.get(url, headers=BOB), 404, "job_not_found")
    error_of(await client.get(f"{JOBS}/{uuid.uuid4()}", headers=ALICE), 404, "job_not_found")
    # {job_id} only matches a UUID: anything else is no route at all.
    error_of(await client.get(f"{JOBS}/not-a-uuid", headers=ALICE), 404, "not_found")
    error_of(await client.get(url), 401, "unauthorized")
    as_admin = await client.get(url, headers=ADMIN)
    assert as_admin.json()["data"]["user_id"] == "alice"


async def test_cancel_job(client: httpx.AsyncClient) -> None:
    job = await create(client)
    url = f"{JOBS}/{job['id']}"

    error_of(await client.delete(url, headers=BOB), 404, "job_not_found")
    response = await client.delete(url, headers=ALICE)

    assert response.status_code == 200, response.text
    cancelled = response.json()["data"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["failure_class"] == "cancelled"
    assert cancelled["completed_at"] is not None
    again = await client.delete(url, headers=ALICE)
    error = error_of(again, 409, "illegal_transition")
    assert error["details"] == {"status": "cancelled", "requested": "cancelled"}
    error_of(await client.delete(f"{JOBS}/{uuid.uuid4()}", headers=ALICE), 404, "job_not_found")


async def test_cancel_a_running_job(client: httpx.AsyncClient) -> None:
    job = await create(client)
    await patch(client, job["id"], status="running")

    response = await client.delete(f"{JOBS}/{job['id']}", headers=ALICE)

    assert response.json()["data"]["status"] == "cancelled"
    late = await patch(client, job["id"], progress=50)
    error_of(late, 409, "stale_attempt")


async def test_admin_can_cancel_anyones_job(client: httpx.AsyncClient) -> None:
    job = await create(client)
    response = await client.delete(f"{JOBS}/{job['id']}", headers=ADMIN)
    assert response.json()["data"]["status"] == "cancelled"


# --- worker routes: GET /jobs/pending, PATCH /jobs/{id} -------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_worker_key"),
        ({"Authorization": "Bearer wrong-key"}, 403, "invalid_worker_key"),
        (ALICE, 403, "invalid_worker_key"),
        (ADMIN, 403, "invalid_worker_key"),
    ],
    ids=["missing", "wrong", "user-jwt", "admin-jwt"],
)
async def test_worker_routes_need_the_worker_key(
    client: httpx.AsyncClient, headers: dict[str, str], status: int, code: str
) -> None:
    job = await create(client)

    error_of(await client.get(f"{JOBS}/pending", headers=headers), status, code)
    patched = await client.patch(f"{JOBS}/{job['id']}", json={"status": "running"}, headers=headers)
    error_of(patched, status, code)
    still = await client.get(f"{JOBS}/{job['id']}", headers=ALICE)
    assert still.json()["data"]["status"] == "pending"


async def test_pending_lists_pending_jobs_oldest_first(client: httpx.AsyncClient) -> None:
    first = await create(client)
    second = await create(client, BOB, output_model="bob/m", gpu_provider="colab")
    third = await create(client, job_type="classifier", base_model="xlm-roberta-base")
    running = await create(client)
    await patch(client, running["id"], status="running")

    async def pending(**params: str) -> list[str]:
        return ids(await client.get(f"{JOBS}/pending", params=params, headers=WORKER_HEADERS))

    assert await pending() == [first["id"], second["id"], third["id"]]
    assert await pending(job_type="classifier") == [third["id"]]
    assert await pending(gpu_provider="colab") == [second["id"]]
    assert await pending(job_type="embedding", gpu_provider="local") == [first["id"]]
    assert await pending(limit="1") == [first["id"]]
    bad = await client.get(f"{JOBS}/pending", params={"job_type": "x"}, headers=WORKER_HEADERS)
    error_of(bad, 422, "validation_error")


async def test_the_briefs_worker_flow(client: httpx.AsyncClient) -> None:
    job = await create(client)
    job_id = job["id"]

    started = await patch(client, job_id, status="running", progress=50)
    assert started.status_code == 200, started.text
    data = started.json()["data"]
    assert (data["status"], data["attempt"], data["progress"]) == ("running", 1, 50)
    assert data["data_url"] == "https://data.example.com/train.csv"
    # The shared key is one credential for all its holders (development's brief flow).
    assert data["worker_id"] == "shared-key"
    assert data["lease_expires_at"] is not None

    assert (await patch(client, job_id, progress=60)).json()["data"]["progress"] == 60
    # A late heartbeat behind the current progress renews the lease and keeps the higher value.
    behind = await patch(client, job_id, progress=40)
    assert behind.status_code == 200, behind.text
    assert behind.json()["data"]["progress"] == 60
    error_of(await patch(client, job_id, progress=70, attempt=2), 409, "stale_attempt")
    assert (await patch(client, job_id, progress=65, attempt=1)).status_code == 200
    current = await client.get(f"{JOBS}/{job_id}", headers=ALICE)
    assert current.json()["data"]["progress"] == 65

    done = await patch(client, job_id, status="completed", progress=100)
    assert done.status_code == 200, done.text
    data = done.json()["data"]
    assert (data["status"], data["progress"], data["phase"]) == ("completed", 100, "done")
    assert data["data_url"] is None
    assert data["completed_at"] is not None

    for late in (
        {"progress": 100},
        {"status": "running"},
        {"status": "completed"},
        {"status": "failed", "error": "late"},
        {"status": "pending"},
    ):
        response = await patch(client, job_id, **late)
        assert response.status_code == 409, (late, response.text)
        assert response.json()["error"]["code"] in {"stale_attempt", "illegal_transition"}
    final = await client.get(f"{JOBS}/{job_id}", headers=ALICE)
    assert final.json()["data"]["status"] == "completed"


@pytest.mark.parametrize("status", ["pending", "cancelled"])
async def test_a_worker_cannot_requeue_or_cancel(client: httpx.AsyncClient, status: str) -> None:
    job = await create(client)
    await patch(client, job["id"], status="running")

    error = error_of(await patch(client, job["id"], status=status), 409, "illegal_transition")
    assert error["details"] == {"status": "running", "requested": status}


async def test_a_worker_can_fail_a_pending_job(client: httpx.AsyncClient) -> None:
    job = await create(client)

    response = await patch(client, job["id"], status="failed", error="boom")

    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["status"], data["error"], data["failure_class"]) == (
        "failed",
        "boom",
        "user_error",
    )


async def test_a_worker_fails_a_running_job(client: httpx.AsyncClient) -> None:
    job = await create(client)
    await patch(client, job["id"], status="running")

    response = await patch(client, job["id"], status="failed", error="CUDA out of memory")

    assert response.json()["data"]["status"] == "failed"
    assert response.json()["data"]["error"] == "CUDA out of memory"


async def test_patch_errors(client: httpx.AsyncClient) -> None:
    job = await create(client)

    error_of(await patch(client, str(uuid.uuid4()), progress=1), 404, "job_not_found")
    error_of(await patch(client, job["id"], progress=150), 422, "validation_error")
    error_of(await patch(client, job["id"], progress=-1), 422, "validation_error")
    error_of(await patch(client, job["id"], status="paused"), 422, "validation_error")
    error_of(await patch(client, job["id"], owner="me"), 422, "validation_error")
    error_of(await patch(client, "not-a-uuid", progress=1), 404, "not_found")
    # Progress for a job nobody claimed: no attempt holds it.
    error_of(await patch(client, job["id"], progress=10), 409, "stale_attempt")


# --- GET /base-models -----------------------------------------------------------------------


async def test_base_models(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/finetune/base-models", headers=ALICE)

    assert response.status_code == 200, response.text
    by_type = {entry["job_type"]: entry for entry in response.json()["data"]}
    assert set(by_type) == {"embedding", "classifier", "llm_lora"}
    for job_type, entry in by_type.items():
        assert {m["id"] for m in entry["models"]} == BRIEF_MODELS[job_type] | OFFLINE_MODELS[
            job_type
        ]
        offline = {m["id"] for m in entry["models"] if m["offline"]}
        assert offline == OFFLINE_MODELS[job_type]
    assert by_type["embedding"]["default_hyperparameters"]["epochs"] == 3
    assert "lora_r" not in by_type["classifier"]["default_hyperparameters"]
    lora = by_type["llm_lora"]["default_hyperparameters"]
    assert (lora["epochs"], lora["lora_r"], lora["gradient_accumulation_steps"]) == (1, 16, 4)
    assert "job_type" not in lora
    error_of(await client.get("/api/finetune/base-models"), 401, "unauthorized")


async def test_offline_models_can_be_disabled(
    db: Any, settings_factory: Callable[..., Settings], bodies: list[str]
) -> None:
    async with running_app(settings_factory(enable_offline_models=False)) as client:
        record_bodies(client, bodies)
        response = await client.get("/api/finetune/base-models", headers=ALICE)
        for entry in response.json()["data"]:
            assert {m["id"] for m in entry["models"]} == BRIEF_MODELS[entry["job_type"]]

        refused = await client.post(JOBS, json=job_body(), headers=ALICE)
        error = error_of(refused, 422, "unknown_base_model")
        assert "intfloat/multilingual-e5-base" in error["message"]
        await assert_nothing_left(client, db)
        await create(client, base_model="intfloat/multilingual-e5-base")


# --- GET /jobs/{id}/events ------------------------------------------------------------------


async def test_job_events_history(client: httpx.AsyncClient) -> None:
    job = await create(client)
    url = f"{JOBS}/{job['id']}/events"
    await patch(client, job["id"], status="running", progress=10)
    await patch(client, job["id"], progress=20, step=2, loss=0.5, log_lines=["step 2"])
    await patch(client, job["id"], status="completed")

    everything = await client.get(url, headers=ALICE)
    assert everything.status_code == 200, everything.text
    rows = everything.json()["data"]
    lifecycle = [r for r in rows if not is_presence_row(r)]
    assert [(r["kind"], r["data"].get("to_status")) for r in lifecycle] == [
        ("status", "pending"),
        ("status", "running"),
        ("progress", None),
        ("progress", None),
        ("status", "completed"),
    ]
    assert lifecycle[0]["data"]["reason"] == "created"
    assert lifecycle[3]["data"]["log_lines"] == ["step 2"]
    assert lifecycle[3]["data"]["loss"] == 0.5
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert all(r["job_id"] == job["id"] for r in rows)

    paged: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        body = (await client.get(url, params=params, headers=ALICE)).json()
        paged.extend(body["data"])
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        params = {"limit": 2, "cursor": body["next_cursor"]}
    assert paged == rows

    statuses = (await client.get(url, params={"kind": "status"}, headers=ALICE)).json()["data"]
    assert all(r["kind"] == "status" for r in statuses)
    assert [r["data"]["to_status"] for r in statuses if not is_presence_row(r)] == [
        "pending",
        "running",
        "completed",
    ]
    progress = (await client.get(url, params={"kind": "progress"}, headers=ALICE)).json()["data"]
    assert [r["data"]["progress"] for r in progress] == [10, 20]

    error_of(await client.get(url, headers=BOB), 404, "job_not_found")
    assert (await client.get(url, headers=ADMIN)).json()["data"] == rows
    error_of(await client.get(url, params={"cursor": "!!"}, headers=ALICE), 422, "invalid_cursor")


# --- the rest -------------------------------------------------------------------------------


async def test_unknown_route_and_method(client: httpx.AsyncClient) -> None:
    error_of(await client.get("/api/finetune/nope", headers=ALICE), 404, "not_found")
    error_of(await client.put(JOBS, json={}, headers=ALICE), 405, "method_not_allowed")


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"data": {"database": True, "broker": True}}


async def test_openapi_lists_the_briefs_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"post", "get"} <= set(paths[JOBS])
    assert {"get", "patch", "delete"} <= set(paths[f"{JOBS}/{{job_id}}"])
    assert "get" in paths[f"{JOBS}/pending"]
    assert "get" in paths["/api/finetune/base-models"]
    assert "get" in paths[f"{JOBS}/{{job_id}}/events"]


async def test_responses_are_recorded_for_the_secret_check(
    client: httpx.AsyncClient, bodies: list[str]
) -> None:
    await client.get(f"{JOBS}/pending", headers={"Authorization": "Bearer wrong-key"})
    await client.get(JOBS, headers={"Authorization": "Bearer not-a-jwt"})
    assert len(bodies) == 2
    assert "wrong-key" not in bodies[0]
    assert "not-a-jwt" not in bodies[1]
