"""The holder of a job is the credential that claimed it (the review's identity findings), on the
running stack.

The review completed a job with the shared worker key and a self-declared `X-Worker-Id`, and a
model was registered under a revision it chose. Now: a credential that does not hold a job is
refused on both paths (HTTP PATCH: 409; a broker report with a guessed claim secret: ignored and
answered with a stop notice addressed to that secret alone), a worker token sees only its pool's
pending jobs, a revoked worker is locked out of HTTP and the broker at once, and a deployment that
turns the shared key off refuses it.
"""

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import aiormq
import httpx
import pytest
from security_stack import SecurityStack, client
from security_workers import Enrolled, create_job, enroll, job_request, linked, poll

from contracts.enums import CancelReason, ModelStore
from contracts.events import JobCancelRequested, ModelPushed

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

EXTERNAL = "https://storage.googleapis.com/ftd-examples/pairs.csv"


@pytest.fixture
async def alice(stack: SecurityStack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, "alice") as http:
        yield http


async def _patch_as(
    stack: SecurityStack, job_id: str, body: dict[str, Any], headers: dict[str, str]
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return await http.patch(f"/api/finetune/jobs/{job_id}", json=body, headers=headers)


async def _models_of(http: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    r = await http.get("/api/models", params={"limit": 200})
    assert r.status_code == 200, r.text
    return [m for m in r.json()["data"] if m["job_id"] == job_id]


async def _registered(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        models = await _models_of(http, job_id)
        return models[0] if models else None

    model: dict[str, Any] = await poll(found, timeout=60, what="the model in the registry")
    return model


def _conflict(r: httpx.Response, code: str) -> None:
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == code, r.text


async def test_the_shared_key_with_a_borrowed_worker_id_cannot_complete_anothers_job(
    stack: SecurityStack, alice: httpx.AsyncClient
) -> None:
    holder = await enroll(stack, "identity-holder")
    job = await create_job(alice, job_request("alice/identity-shared-key", EXTERNAL))
    claimed = await _patch_as(stack, job["id"], {"status": "running"}, holder.bearer)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["data"]["attempt"] == 1

    # The review's request: the shared key, the holder's id in X-Worker-Id and in the body.
    shared = {"Authorization": f"Bearer {stack.stack.worker_key}"}
    evil = {"status": "completed", "output_revision": "evil-rev", "progress": 100}
    for worker_id in (holder.hex, holder.id, "http-worker"):
        r = await _patch_as(
            stack,
            job["id"],
            {**evil, "worker_id": worker_id, "attempt": 1},
            {**shared, "X-Worker-Id": worker_id},
        )
        _conflict(r, "stale_attempt")
    _conflict(
        await _patch_as(
            stack, job["id"], {"status": "running"}, {**shared, "X-Worker-Id": holder.hex}
        ),
        "already_claimed",
    )
    after = (await alice.get(f"/api/finetune/jobs/{job['id']}")).json()["data"]
    assert (after["status"], after["attempt"]) == ("running", 1)

    # The holder completes it: the registry then holds its revision, never the forged one.
    done = await _patch_as(
        stack, job["id"], {"status": "completed", "output_revision": "holder-rev"}, holder.bearer
    )
    assert done.status_code == 200, done.text
    model = await _registered(alice, job["id"])
    assert model["revision"] == "holder-rev"
    assert "evil-rev" not in str(await _models_of(alice, job["id"]))


async def test_of_two_enrolled_workers_the_non_holder_is_refused_over_http_and_the_broker(
    stack: SecurityStack, alice: httpx.AsyncClient
) -> None:
    holder, intruder = await enroll(stack, "identity-a"), await enroll(stack, "identity-b")
    job = await create_job(alice, job_request("alice/identity-two-workers", EXTERNAL))
    job_id = uuid.UUID(job["id"])
    async with linked(holder) as a, linked(intruder) as b:
        reply = await a.request_claim(job_id)
        assert reply.granted, reply
        assert reply.job is not None
        spec = reply.job
        heard_by_holder: list[JobCancelRequested] = []
        heard_by_intruder: list[JobCancelRequested] = []
        await a.watch_cancel(
            job_id, spec.attempt, heard_by_holder.append, claim_secret=spec.claim_secret
        )

        # HTTP: the intruder's own valid credential does not hold the job.
        for body in (
            {"status": "completed", "output_revision": "evil-rev", "attempt": spec.attempt},
            {"status": "failed", "error": "stop", "attempt": spec.attempt},
            {"progress": 50, "attempt": spec.attempt},
        ):
            _conflict(await _patch_as(stack, job["id"], body, intruder.bearer), "stale_attempt")
        _conflict(
            await _patch_as(stack, job["id"], {"status": "running"}, intruder.bearer),
            "already_claimed",
        )

        # The broker: a report naming the current attempt (and the holder's id) with a guessed
        # claim secret. It is ignored; only its sender is told to stop.
        guess = secrets.token_urlsafe(32)
        await b.watch_cancel(job_id, spec.attempt, heard_by_intruder.append, claim_secret=guess)
        await b.publish(
            ModelPushed(
                job_id=job_id,
                attempt=spec.attempt,
                worker_id=holder.hex,
                claim_secret=guess,
                repo_id="alice/identity-two-workers",
                revision="evil-rev",
                store=ModelStore.HUB,
                uri="hf://alice/identity-two-workers@evil-rev",
            )
        )

        async def told() -> list[JobCancelRequested]:
            return heard_by_intruder

        notices = await poll(told, timeout=30, what="the stop notice for the guessed secret")
        assert notices[0].reason is CancelReason.STALE_ATTEMPT
        assert notices[0].claim_secret_sha256 == hashlib.sha256(guess.encode()).hexdigest()
        current = (await alice.get(f"/api/finetune/jobs/{job['id']}")).json()["data"]
        assert (current["status"], current["attempt"]) == ("running", spec.attempt)
        assert await _models_of(alice, job["id"]) == []

        # The holder's own report completes it, with its revision.
        await a.publish(
            ModelPushed(
                **a.report_fields(spec),  # type: ignore[arg-type]
                repo_id="alice/identity-two-workers",
                revision="holder-rev",
                store=ModelStore.HUB,
                uri="hf://alice/identity-two-workers@holder-rev",
            )
        )
        model = await _registered(alice, job["id"])
        assert model["revision"] == "holder-rev"
        # Long delivered by now (the notice went out before the intruder heard it), and not
        # for the holder, whose secret hashes otherwise: it never stopped.
        assert heard_by_holder == []
    _conflict(
        await _patch_as(stack, job["id"], {"status": "completed"}, intruder.bearer),
        "stale_attempt",
    )


async def test_a_worker_token_lists_only_its_pools_pending_jobs(stack: SecurityStack) -> None:
    shared = await enroll(stack, "pool-shared")
    alices = await enroll(stack, "pool-alice", owner="pool-alice")
    bobs = await enroll(stack, "pool-bob", owner="pool-bob")
    made: dict[str, str] = {}
    # A route nobody else uses (classifier on runpod), so the lists hold this test's jobs only.
    for user, pools in (
        ("pool-alice", ("shared", "private", "any")),
        ("pool-bob", ("shared", "private")),
    ):
        async with client(stack, user) as http:
            for pool in pools:
                job = await create_job(
                    http,
                    job_request(
                        f"{user}/pooled-{pool}",
                        EXTERNAL,
                        job_type="classifier",
                        provider="runpod",
                        pool=pool,
                    ),
                )
                made[f"{user}:{pool}"] = job["id"]

    async def pending(worker: Enrolled) -> set[str]:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            r = await http.get(
                "/api/finetune/jobs/pending",
                params={"job_type": "classifier", "gpu_provider": "runpod", "limit": 100},
                headers=worker.bearer,
            )
        assert r.status_code == 200, r.text
        return {j["id"] for j in r.json()["data"]} & set(made.values())

    assert await pending(shared) == {
        made["pool-alice:shared"],
        made["pool-alice:any"],
        made["pool-bob:shared"],
    }
    assert await pending(alices) == {made["pool-alice:private"], made["pool-alice:any"]}
    assert await pending(bobs) == {made["pool-bob:private"]}

    # Another pool's job is not there to be claimed either.
    r = await _patch_as(stack, made["pool-bob:private"], {"status": "running"}, alices.bearer)
    assert r.status_code == 404, r.text
    r = await _patch_as(stack, made["pool-alice:private"], {"status": "running"}, shared.bearer)
    assert r.status_code == 404, r.text
    for key, job_id in made.items():
        async with client(stack, key.split(":")[0]) as http:
            await http.delete(f"/api/finetune/jobs/{job_id}")


async def test_a_revoked_worker_is_refused_over_http_and_its_broker_connection_is_closed(
    stack: SecurityStack,
) -> None:
    worker = await enroll(stack, "identity-revoked")
    connection = await aio_pika.connect(worker.amqp_url)
    closed: list[BaseException | None] = []
    connection.close_callbacks.add(lambda _c, exc=None: closed.append(exc))
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        assert (await http.get("/api/workers/me", headers=worker.bearer)).status_code == 200

        r = await http.delete(f"/api/workers/{worker.id}", headers=stack.admin_headers())
        assert r.status_code == 200, r.text
        assert r.json()["data"]["status"] == "revoked"

        for method, path in (
            ("GET", "/api/workers/me"),
            ("GET", "/api/finetune/jobs/pending"),
            ("PATCH", f"/api/finetune/jobs/{uuid.uuid4()}"),
        ):
            body = {"status": "running"} if method == "PATCH" else None
            refused = await http.request(method, path, headers=worker.bearer, json=body)
            assert refused.status_code == 401, (path, refused.text)
            assert refused.headers["www-authenticate"].startswith("Bearer")

    async def was_closed() -> bool:
        return bool(closed)

    await poll(was_closed, timeout=15, what="the broker to close the revoked worker's connection")
    assert "is deleted" in str(closed[0]), closed
    with pytest.raises((aiormq.exceptions.ProbableAuthenticationError, ConnectionError)):
        await aio_pika.connect(worker.amqp_url)


async def test_a_deployment_without_the_shared_key_refuses_it(stack: SecurityStack) -> None:
    """FTD_ALLOW_SHARED_WORKER_KEY=false (production's default): job-api restarted with it,
    behind the same gateway."""
    worker = await enroll(stack, "identity-enrolled")
    shared = {"Authorization": f"Bearer {stack.stack.worker_key}"}
    with stack.restarted("job-api", FTD_ALLOW_SHARED_WORKER_KEY="false"):
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            for method, path, body in (
                ("GET", "/api/finetune/jobs/pending", None),
                ("PATCH", f"/api/finetune/jobs/{uuid.uuid4()}", {"status": "running"}),
            ):
                refused = await http.request(method, path, headers=shared, json=body)
                assert refused.status_code == 403, refused.text
                assert refused.json()["error"]["code"] == "invalid_worker_key"
                assert stack.stack.worker_key not in refused.text
            # An enrolled worker's own token still works there.
            r = await http.get("/api/finetune/jobs/pending", headers=worker.bearer)
            assert r.status_code == 200, r.text
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        # Development again (the stack's setting): the shared key opens the endpoints.
        r = await http.get("/api/finetune/jobs/pending", headers=shared)
        assert r.status_code == 200, r.text
