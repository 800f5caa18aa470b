"""A 2xx means committed, over a real uvicorn and TCP (ASGITransport waits for the whole ASGI call,
dependency teardown included, so it cannot see a commit that happens after the response).

- a GET right after a 201 POST (or a DELETE) sees it, every time;
- a commit that fails answers the error envelope and stores nothing (no job, no outbox row), and
  counts nothing;
- `Idempotency-Key`: one job per (user, key), also under concurrent retries; another body with
  the same key is a 409;
- connections go back to the pool before the response starts;
- an outbox row written in a transaction that rolls back is never published;
- the worker routes refuse a near-miss worker key and a user token.
"""

import asyncio
import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import (
    AMQP_URL,
    WORKER_KEY,
    eventually,
    job_body,
    served_app,
    user_headers,
)
from prometheus_client import REGISTRY

from contracts.enums import GPUProvider, JobPhase, JobStatus, JobType
from contracts.events import JobStatusChanged
from contracts.routing import BrokerNames
from job_api.config import Settings
from job_api.entrypoints.schemas import FinetuneJobCreate
from job_api.service_layer import jobs as job_service
from job_api.service_layer.unit_of_work import UnitOfWork
from messaging.broker import Broker

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
ALICE = user_headers("alice")
BOB = user_headers("bob")
PAIRS = int(os.environ.get("FTD_COMMIT_PAIRS", "1000"))


def _quiet(settings_factory: Callable[..., Settings], **overrides: Any) -> Settings:
    return settings_factory(access_log=False, **overrides)


async def _count(db: Any, table: str, where: str = "TRUE") -> int:
    async with db.connect() as conn:
        query = sa.text(f"SELECT count(*) FROM {table} WHERE {where}")  # noqa: S608
        return int((await conn.execute(query)).scalar_one())


@pytest.mark.timeout(900)
async def test_a_get_right_after_a_write_always_sees_it(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    misses: list[str] = []
    async with served_app(_quiet(settings_factory, run_consumers=False)) as (client, _app):

        async def lane(n: int) -> None:
            for _ in range(n):
                created = await client.post(JOBS, json=job_body(), headers=ALICE)
                assert created.status_code == 201, created.text
                job_id = created.json()["data"]["id"]
                seen = await client.get(f"{JOBS}/{job_id}", headers=ALICE)
                if seen.status_code != 200:
                    misses.append(f"GET after POST: {seen.status_code}")
                cancelled = await client.delete(f"{JOBS}/{job_id}", headers=ALICE)
                assert cancelled.status_code == 200, cancelled.text
                after = await client.get(f"{JOBS}/{job_id}", headers=ALICE)
                if after.json()["data"]["status"] != "cancelled":
                    misses.append(f"status after DELETE: {after.json()['data']['status']}")

        lanes = 4
        await asyncio.gather(*(lane(PAIRS // lanes) for _ in range(lanes)))
    assert misses == []
    assert await _count(db, "jobs.jobs", "status = 'cancelled'") == PAIRS // lanes * lanes


FAIL_AT_COMMIT = "alice/fail-at-commit"


@pytest.fixture
async def fails_at_commit(db: Any) -> Any:
    """A constraint checked at COMMIT (deferred) that a job named FAIL_AT_COMMIT violates: the
    transaction runs to its end and only COMMIT fails, as a serialization failure or a lost
    connection would."""
    async with db.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE FUNCTION jobs.refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.output_model = '{FAIL_AT_COMMIT}' THEN "
                "RAISE EXCEPTION 'refused at commit' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NULL; END $$"
            )
        )
        await conn.execute(
            sa.text(
                "CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT OR UPDATE ON jobs.jobs "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION jobs.refuse_at_commit()"
            )
        )
    yield
    async with db.begin() as conn:
        await conn.execute(sa.text("DROP TRIGGER refuse_at_commit ON jobs.jobs"))
        await conn.execute(sa.text("DROP FUNCTION jobs.refuse_at_commit()"))


def _created_count() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == "ftd_jobs_created_total":
                total += sample.value
    return total


@pytest.mark.parametrize("idempotency_key", [None, "k-commit"])
async def test_a_failed_commit_is_an_error_and_stores_nothing(
    settings_factory: Callable[..., Settings],
    db: Any,
    fails_at_commit: None,
    idempotency_key: str | None,
) -> None:
    """Without a key the job is one statement run without a transaction block (its deferred
    check runs when the statement completes); with a key, the key and the job are one
    transaction. Either way the failure is an error and nothing is left."""
    key = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    async with served_app(_quiet(settings_factory)) as (client, _app):
        before = _created_count()
        response = await client.post(
            JOBS, json=job_body(output_model=FAIL_AT_COMMIT), headers={**ALICE, **key}
        )
        assert response.status_code >= 500, response.text
        assert response.json()["error"]["code"] == "internal_error"
        assert await _count(db, "jobs.jobs") == 0
        assert await _count(db, "jobs.outbox") == 0
        assert await _count(db, "jobs.job_events") == 0
        assert await _count(db, "jobs.idempotency_keys") == 0
        # Counted only after commit: nothing was created.
        assert _created_count() == before
        ok = await client.post(JOBS, json=job_body(), headers=ALICE)
        assert ok.status_code == 201
        assert _created_count() == before + 1


REFUSED_BY_OUTBOX = "alice/outbox-refused"


@pytest.fixture
async def outbox_refuses(db: Any) -> Any:
    """The outbox refuses (raises on INSERT) any event that names REFUSED_BY_OUTBOX: the job's
    own row is fine, only staging its events fails."""
    async with db.begin() as conn:
        await conn.execute(
            sa.text(
                "CREATE FUNCTION jobs.refuse_outbox_row() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF convert_from(NEW.body, 'UTF8') LIKE "
                f"'%{REFUSED_BY_OUTBOX}%' THEN "
                "RAISE EXCEPTION 'outbox refused' USING ERRCODE = 'check_violation'; "
                "END IF; RETURN NEW; END $$"
            )
        )
        await conn.execute(
            sa.text(
                "CREATE TRIGGER refuse_outbox_row BEFORE INSERT ON jobs.outbox "
                "FOR EACH ROW EXECUTE FUNCTION jobs.refuse_outbox_row()"
            )
        )
    yield
    async with db.begin() as conn:
        await conn.execute(sa.text("DROP TRIGGER refuse_outbox_row ON jobs.outbox"))
        await conn.execute(sa.text("DROP FUNCTION jobs.refuse_outbox_row()"))


@pytest.mark.parametrize("idempotency_key", [None, "k-outbox"])
async def test_a_job_and_its_outbox_rows_are_one_commit(
    settings_factory: Callable[..., Settings],
    db: Any,
    outbox_refuses: None,
    idempotency_key: str | None,
) -> None:
    """A job whose events cannot be staged is not created: no job row is ever visible without
    the rows that announce it (a job committed first and announced in a later transaction would
    be left behind here, never dispatched)."""
    key = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    async with served_app(_quiet(settings_factory)) as (client, _app):
        response = await client.post(
            JOBS, json=job_body(output_model=REFUSED_BY_OUTBOX), headers={**ALICE, **key}
        )
        assert response.status_code >= 500, response.text
        assert response.json()["error"]["code"] == "internal_error"
        assert await _count(db, "jobs.jobs") == 0
        assert await _count(db, "jobs.job_events") == 0
        assert await _count(db, "jobs.idempotency_keys") == 0
        listed = await client.get(JOBS, headers=ALICE)
        assert listed.json()["data"] == []
        # The trigger refuses only that name: the same request for another model is created
        # with its events.
        ok = await client.post(JOBS, json=job_body(), headers={**ALICE, **key})
        assert ok.status_code == 201, ok.text
        assert await _count(db, "jobs.jobs") == 1


async def test_idempotency_key_gives_one_job_even_under_concurrent_retries(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    async with served_app(_quiet(settings_factory)) as (client, _app):
        key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        answers = await asyncio.gather(
            *(client.post(JOBS, json=job_body(), headers={**ALICE, **key}) for _ in range(8))
        )
        assert {r.status_code for r in answers} == {201}, [r.text for r in answers]
        assert len({r.json()["data"]["id"] for r in answers}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 7
        assert await _count(db, "jobs.jobs") == 1
        # One "created" history row, not eight (the presence monitor may add its own rows).
        assert await _count(db, "jobs.job_events", "data->>'reason' = 'created'") == 1

        again = await client.post(JOBS, json=job_body(), headers={**ALICE, **key})
        assert again.json()["data"]["id"] == answers[0].json()["data"]["id"]

        other = await client.post(
            JOBS, json=job_body(output_model="alice/another"), headers={**ALICE, **key}
        )
        assert other.status_code == 409
        assert other.json()["error"]["code"] == "idempotency_key_reused"

        # Keys are per user: bob's same key is his own job.
        bobs = await client.post(
            JOBS, json=job_body(output_model="bob/custom-embedding"), headers={**BOB, **key}
        )
        assert bobs.status_code == 201
        assert bobs.json()["data"]["id"] != answers[0].json()["data"]["id"]
        assert await _count(db, "jobs.jobs") == 2

        # A refused request does not burn its key.
        fresh = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
        bad = await client.post(JOBS, json=job_body(base_model="gpt2"), headers={**ALICE, **fresh})
        assert bad.status_code == 422
        fixed = await client.post(
            JOBS, json=job_body(base_model="gpt2"), headers={**ALICE, **fresh}
        )
        assert fixed.status_code == 422
        good = await client.post(JOBS, json=job_body(), headers={**ALICE, **fresh})
        assert good.status_code == 201


# The first request sets every field of the body; each case changes one (some twice).
FULL_BODY = job_body(project_id="p1", hyperparameters={"epochs": 1}, worker_pool="shared")
CHANGED_FIELD = [
    ("job_type", "classifier"),
    ("base_model", "intfloat/multilingual-e5-base"),
    ("training_data_url", "https://data.example.com/other.csv"),
    ("output_model", "alice/another-model"),
    ("gpu_provider", "colab"),
    ("project_id", "p2"),
    ("project_id", None),
    ("hyperparameters", {"epochs": 2}),
    ("hyperparameters", {"epochs": 1, "batch_size": 8}),
    ("hyperparameters", {}),
    ("worker_pool", "any"),
]


def test_every_field_of_the_create_body_has_a_changed_value() -> None:
    assert {field for field, _ in CHANGED_FIELD} == set(FinetuneJobCreate.model_fields)
    assert set(FULL_BODY) == set(FinetuneJobCreate.model_fields)


@pytest.mark.parametrize(("field", "value"), CHANGED_FIELD, ids=lambda v: str(v))
async def test_an_idempotency_key_retried_with_any_field_changed_is_409(
    client: httpx.AsyncClient, db: Any, field: str, value: Any
) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post(JOBS, json=FULL_BODY, headers={**ALICE, **key})
    assert first.status_code == 201, first.text
    changed = {**FULL_BODY, field: value}
    assert changed != FULL_BODY
    retried = await client.post(JOBS, json=changed, headers={**ALICE, **key})
    assert retried.status_code == 409, retried.text
    assert retried.json()["error"]["code"] == "idempotency_key_reused"
    assert "Idempotent-Replayed" not in retried.headers
    assert await _count(db, "jobs.jobs") == 1
    # The unchanged body is still the first job.
    same = await client.post(JOBS, json=FULL_BODY, headers={**ALICE, **key})
    assert same.json()["data"]["id"] == first.json()["data"]["id"]


async def test_connections_go_back_before_the_response_starts(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    in_use_at_start: list[tuple[str, int]] = []

    def wrap(app: Any) -> Any:
        async def asgi(scope: Any, receive: Any, send: Any) -> None:
            async def observed(message: Any) -> None:
                if scope["type"] == "http" and message["type"] == "http.response.start":
                    pools = app.state.service.db.pools
                    in_use_at_start.append((scope["method"], pools["http"].in_use))
                await send(message)

            await app(scope, receive, observed)

        return asgi

    async with served_app(_quiet(settings_factory), wrap=wrap) as (client, _app):
        created = await client.post(JOBS, json=job_body(), headers=ALICE)
        job_id = created.json()["data"]["id"]
        await client.get(f"{JOBS}/{job_id}", headers=ALICE)
        await client.get(JOBS, headers=ALICE)
        await client.get(f"{JOBS}/{job_id}/events", headers=ALICE)
        await client.delete(f"{JOBS}/{job_id}", headers=ALICE)
    assert [m for m, _ in in_use_at_start] == ["POST", "GET", "GET", "GET", "DELETE"]
    assert all(n == 0 for _, n in in_use_at_start), in_use_at_start


async def test_an_outbox_row_of_a_rolled_back_transaction_is_never_published(
    settings_factory: Callable[..., Settings], db: Any, broker_prefix: str
) -> None:
    names = BrokerNames(broker_prefix)
    broker = Broker(AMQP_URL, names, client_name="test-outbox-tap")
    await broker.connect()
    received: list[str] = []
    try:
        async with served_app(_quiet(settings_factory)) as (_client, app):
            channel = await broker.channel()
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            await queue.bind(names.events_exchange, routing_key="job.status_changed")

            async def keep(message: Any) -> None:
                async with message.process():
                    received.append(message.body.decode())

            await queue.consume(keep)
            state = app.state.service
            doomed, marker = uuid.uuid4(), uuid.uuid4()

            def changed(job_id: uuid.UUID) -> JobStatusChanged:
                return JobStatusChanged(
                    job_id=job_id,
                    user_id="alice",
                    from_status=None,
                    to_status=JobStatus.PENDING,
                    attempt=0,
                    phase=JobPhase.QUEUED,
                )

            async def publish_then_fail() -> None:
                async with state.db.write() as conn:
                    await UnitOfWork(conn).publish(changed(doomed))
                    raise RuntimeError("roll back after publish")

            with pytest.raises(RuntimeError):
                await publish_then_fail()
            assert await _count(db, "jobs.outbox") == 0
            async with state.db.write() as conn:
                await UnitOfWork(conn).publish(changed(marker))
            # The relay publishes in order: once the marker is here, the doomed one never will be.
            await eventually(lambda: _arrived(received, marker), timeout=20)
            await channel.close()
    finally:
        await broker.close()
    assert not any(str(doomed) in body for body in received)


@pytest.mark.parametrize("first", [True, False])
async def test_a_new_job_written_through_the_driver_stays_inside_its_transaction(
    settings_factory: Callable[..., Settings], db: Any, first: bool
) -> None:
    """The job INSERT goes straight to asyncpg. As a transaction's first statement (SQLAlchemy
    has not sent BEGIN yet) or after others, a rollback must take it back with its outbox and
    history rows."""
    async with served_app(_quiet(settings_factory)) as (_client, app):
        state = app.state.service
        body = job_body()
        cmd = job_service.SubmitJob(
            user_id="alice",
            job_type=JobType(body["job_type"]),
            base_model=body["base_model"],
            training_data_url=body["training_data_url"],
            output_model=body["output_model"],
            gpu_provider=GPUProvider(body.get("gpu_provider", "local")),
        )

        async def create_then_fail() -> None:
            async with state.db.write() as conn:
                uow = UnitOfWork(conn)
                if not first:
                    await conn.execute(sa.text("SELECT 1"))
                await job_service.create_job(uow, cmd, state.policy, now=datetime.now(UTC))
                raise RuntimeError("roll back after the insert")

        with pytest.raises(RuntimeError):
            await create_then_fail()
    assert await _count(db, "jobs.jobs") == 0
    assert await _count(db, "jobs.outbox") == 0
    assert await _count(db, "jobs.job_events") == 0


async def _arrived(received: list[str], job_id: uuid.UUID) -> bool:
    return any(str(job_id) in body for body in received)


@pytest.mark.parametrize(
    "authorization",
    [
        f"Bearer {WORKER_KEY[:-1]}{'A' if WORKER_KEY[-1] != 'A' else 'B'}",
        f"Bearer {WORKER_KEY}x",
        f"Bearer {WORKER_KEY[:-1]}",
        f"Bearer {WORKER_KEY.upper()}",
        ALICE["Authorization"],
    ],
    ids=["last-char", "suffix", "prefix", "case", "user-token"],
)
async def test_worker_routes_refuse_a_near_miss_key(
    settings_factory: Callable[..., Settings], db: Any, authorization: str
) -> None:
    async with served_app(_quiet(settings_factory)) as (client, _app):
        job_id = (await client.post(JOBS, json=job_body(), headers=ALICE)).json()["data"]["id"]
        headers = {"Authorization": authorization}
        claim = await client.patch(f"{JOBS}/{job_id}", json={"status": "running"}, headers=headers)
        assert claim.status_code == 403, claim.text
        assert claim.json()["error"]["code"] == "invalid_worker_key"
        pending = await client.get(f"{JOBS}/pending", headers=headers)
        assert pending.status_code == 403
        anonymous = await client.get(f"{JOBS}/pending")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        job = (await client.get(f"{JOBS}/{job_id}", headers=ALICE)).json()["data"]
        assert job["status"] == "pending"
        assert job["attempt"] == 0


async def test_a_new_jobs_events_are_published_once_each_in_order_and_leave_the_outbox(
    settings_factory: Callable[..., Settings], db: Any, broker_prefix: str
) -> None:
    """A created job's events go to the broker from the POST's process right after the commit
    (OutboxRelay.publish_now), racing the relay's own NOTIFY-driven read: each is published once,
    job.created before the job's first status, and the outbox empties."""
    names = BrokerNames(broker_prefix)
    broker = Broker(AMQP_URL, names, client_name="test-outbox-tap")
    await broker.connect()
    received: list[tuple[str, str, int]] = []
    try:
        async with served_app(_quiet(settings_factory, run_consumers=False)) as (client, app):
            channel = await broker.channel()
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            for key in ("job.created.#", "job.status_changed"):
                await queue.bind(names.events_exchange, routing_key=key)

            async def keep(message: Any) -> None:
                async with message.process():
                    envelope = json.loads(message.body)
                    received.append((envelope["subject"], envelope["type"], envelope["sequence"]))

            await queue.consume(keep)

            async def lane() -> None:
                for _ in range(10):
                    created = await client.post(JOBS, json=job_body(), headers=ALICE)
                    assert created.status_code == 201, created.text

            await asyncio.gather(*(lane() for _ in range(4)))

            async def all_in() -> bool:
                return len(received) >= 80

            await eventually(all_in, timeout=30)

            async def drained() -> bool:
                return await _count(db, "jobs.outbox") == 0

            await eventually(drained, timeout=10)
            relay = app.state.service.relay
            assert relay is not None
            assert relay.stats.published == 80
            await asyncio.sleep(0.3)  # nothing more arrives
            await channel.close()
    finally:
        await broker.close()
    assert len(received) == 80, "an event was published twice"
    by_job: dict[str, list[tuple[str, int]]] = {}
    for subject, kind, sequence in received:
        by_job.setdefault(subject, []).append((kind, sequence))
    assert len(by_job) == 40
    for events in by_job.values():
        assert events == [("job.created", 1), ("job.status_changed", 2)]
