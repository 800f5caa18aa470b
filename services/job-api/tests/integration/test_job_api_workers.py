"""Enrolled workers over HTTP: each has its own credential (shown once, revocable), the holder of
a job is the credential that claimed it (never a header), a worker sees and takes only its pool's
jobs, and the shared key is the brief's development convenience that a deployment turns off."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from job_api_testing import (
    WORKER_HEADERS,
    bearer,
    enroll_over_http,
    eventually,
    job_body,
    running_app,
    user_headers,
)
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.credentials import token_hash
from job_api.config import Settings

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
WORKERS = "/api/workers"
ALICE, BOB, OPERATOR = user_headers("alice"), user_headers("bob"), user_headers("op", admin=True)


def error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message


async def create(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> str:
    response = await client.post(JOBS, json=job_body(**body), headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def test_enrolling_shows_the_token_once_and_stores_only_its_hash(
    client: httpx.AsyncClient, db: AsyncEngine
) -> None:
    enrolled = await enroll_over_http(client, "alices-colab", owner="alice")
    token, worker = enrolled["token"], enrolled["worker"]
    assert token.startswith("ftdw_")
    assert worker["pool"] == "private"
    assert worker["owner_id"] == "alice"
    assert worker["status"] == "offline"  # no heartbeat yet
    assert token in enrolled["setup"]["shell"]
    assert "ftd-worker run" in enrolled["setup"]["colab"]
    # Never again: not in the list, not in the row.
    listed = await client.get(WORKERS, headers=ALICE)
    assert token not in listed.text
    assert [w["name"] for w in listed.json()["data"]] == ["alices-colab"]
    async with db.connect() as conn:
        row = (await conn.execute(text("SELECT row_to_json(w)::text FROM jobs.workers w"))).one()
    assert token not in row[0]
    assert token_hash(token) in row[0]


async def test_only_an_operator_enrolls_into_the_shared_pool(client: httpx.AsyncClient) -> None:
    refused = await client.post(WORKERS, json={"name": "x", "pool": "shared"}, headers=ALICE)
    error(refused, 403, "forbidden")
    for name in ("", "a\x00b", "x" * 101):
        bad = await client.post(WORKERS, json={"name": name}, headers=ALICE)
        error(bad, 422, "validation_error")
    listed = await client.get(WORKERS, headers=OPERATOR)
    assert listed.json()["data"] == []


async def test_users_see_the_shared_pool_and_their_own_workers_only(
    client: httpx.AsyncClient,
) -> None:
    shared = await enroll_over_http(client, "runpod-a100")
    alices = await enroll_over_http(client, "alices-box", owner="alice")
    bobs = await enroll_over_http(client, "bobs-box", owner="bob")

    async def names(headers: dict[str, str], **params: str) -> set[str]:
        response = await client.get(WORKERS, headers=headers, params=params)
        assert response.status_code == 200, response.text
        return {w["name"] for w in response.json()["data"]}

    assert await names(ALICE) == {"runpod-a100", "alices-box"}
    assert await names(BOB, pool="private") == {"bobs-box"}
    assert await names(OPERATOR) == {"runpod-a100", "alices-box", "bobs-box"}
    # Another user's worker is not found; a shared one is shown without who runs what.
    error(
        await client.get(f"{WORKERS}/{bobs['worker']['id']}", headers=ALICE),
        404,
        "worker_not_found",
    )
    seen = (await client.get(f"{WORKERS}/{shared['worker']['id']}", headers=ALICE)).json()["data"]
    assert (seen["owner_id"], seen["current_job_id"]) == (None, None)
    # Only its owner (or an operator) revokes a private worker; only an operator a shared one.
    error(
        await client.delete(f"{WORKERS}/{bobs['worker']['id']}", headers=ALICE),
        404,
        "worker_not_found",
    )
    error(
        await client.delete(f"{WORKERS}/{shared['worker']['id']}", headers=ALICE), 403, "forbidden"
    )
    assert (
        await client.delete(f"{WORKERS}/{alices['worker']['id']}", headers=ALICE)
    ).status_code == 200


async def test_a_worker_learns_who_it_is_with_its_own_token(client: httpx.AsyncClient) -> None:
    enrolled = await enroll_over_http(client, "alices-colab", owner="alice")
    me = await client.get(f"{WORKERS}/me", headers=bearer(enrolled["token"]))
    assert me.status_code == 200, me.text
    data = me.json()["data"]
    assert data["worker"]["id"] == enrolled["worker"]["id"]
    assert data["pool"].startswith("p")
    assert data["broker"]["url"]
    error(await client.get(f"{WORKERS}/me", headers=WORKER_HEADERS), 403, "not_enrolled")
    error(await client.get(f"{WORKERS}/me", headers=ALICE), 403, "invalid_worker_key")


async def test_a_revoked_token_opens_nothing_and_its_job_goes_back_at_once(
    client: httpx.AsyncClient,
) -> None:
    enrolled = await enroll_over_http(client, "box")
    worker = bearer(enrolled["token"])
    job_id = await create(client, ALICE)
    claimed = await client.patch(f"{JOBS}/{job_id}", json={"status": "running"}, headers=worker)
    assert claimed.status_code == 200, claimed.text

    revoked = await client.delete(f"{WORKERS}/{enrolled['worker']['id']}", headers=OPERATOR)
    assert revoked.json()["data"]["status"] == "revoked"

    for response in (
        await client.patch(f"{JOBS}/{job_id}", json={"progress": 5}, headers=worker),
        await client.get(f"{JOBS}/pending", headers=worker),
        await client.get(f"{WORKERS}/me", headers=worker),
    ):
        error(response, 401, "invalid_worker_credential")
        assert response.headers["www-authenticate"] == "Bearer"
    job = (await client.get(f"{JOBS}/{job_id}", headers=ALICE)).json()["data"]
    assert (job["status"], job["worker_id"]) == ("pending", None)
    assert "revoked" in job["error"]
    # A forged token naming the same worker id is no better.
    forged = enrolled["token"][:-4] + "AAAA"
    error(
        await client.get(f"{JOBS}/pending", headers=bearer(forged)),
        401,
        "invalid_worker_credential",
    )


async def test_the_holder_is_the_credential_never_a_header(client: httpx.AsyncClient) -> None:
    """The review's attack: a second client with the key and the same X-Worker-Id completed a
    job with a fake revision. Now a second credential gets 409 whatever it declares."""
    a = bearer((await enroll_over_http(client, "a"))["token"])
    b = bearer((await enroll_over_http(client, "b"))["token"])
    job_id = await create(client, ALICE)
    first = await client.patch(
        f"{JOBS}/{job_id}", json={"status": "running"}, headers={**a, "X-Worker-Id": "a"}
    )
    assert first.status_code == 200
    for body in (
        {"status": "completed", "output_revision": "evil-rev"},
        {
            "status": "completed",
            "output_revision": "evil-rev",
            "worker_id": first.json()["data"]["worker_id"],
        },
        {"progress": 99},
    ):
        forged = await client.patch(
            f"{JOBS}/{job_id}", json=body, headers={**b, "X-Worker-Id": "a"}
        )
        error(forged, 409, "stale_attempt")
    shared = await client.patch(
        f"{JOBS}/{job_id}", json={"status": "completed"}, headers=WORKER_HEADERS
    )
    error(shared, 409, "stale_attempt")
    job = (await client.get(f"{JOBS}/{job_id}", headers=ALICE)).json()["data"]
    assert (job["status"], job["output_revision"]) == ("running", None)


async def test_a_worker_sees_and_takes_only_its_pools_jobs(client: httpx.AsyncClient) -> None:
    alices = bearer((await enroll_over_http(client, "alices-box", owner="alice"))["token"])
    shared = bearer((await enroll_over_http(client, "runpod"))["token"])
    public = await create(client, ALICE)
    private = await create(client, ALICE, worker_pool="private", output_model="alice/private")
    either = await create(client, ALICE, worker_pool="any", output_model="alice/either")
    bobs = await create(client, BOB, worker_pool="any", output_model="bob/his")

    async def pending(headers: dict[str, str]) -> set[str]:
        response = await client.get(f"{JOBS}/pending", headers=headers)
        assert response.status_code == 200, response.text
        return {j["id"] for j in response.json()["data"]}

    assert await pending(shared) == {public, either, bobs}
    assert await pending(alices) == {private, either}
    # Another pool's job is not even found for a worker: its data URL is never minted for it.
    for job_id in (private,):
        error(
            await client.patch(f"{JOBS}/{job_id}", json={"status": "running"}, headers=shared),
            404,
            "job_not_found",
        )
    for job_id in (public, bobs):
        error(
            await client.patch(f"{JOBS}/{job_id}", json={"status": "running"}, headers=alices),
            404,
            "job_not_found",
        )
    took = await client.patch(f"{JOBS}/{private}", json={"status": "running"}, headers=alices)
    assert took.status_code == 200, took.text
    assert took.json()["data"]["data_url"] is not None


async def test_a_private_job_needs_a_worker_of_ones_own(client: httpx.AsyncClient) -> None:
    response = await client.post(
        JOBS,
        json=job_body(worker_pool="private", output_model="carol/m"),
        headers=user_headers("carol"),
    )
    assert "no enrolled worker of your own" in error(response, 422, "no_private_pool")
    jobs = await client.get(JOBS, headers=user_headers("carol"))
    assert jobs.json()["data"] == []


async def test_a_deployment_without_the_shared_key_refuses_it(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory(allow_shared_worker_key=False)) as client:
        job_id = await create(client, ALICE)
        for response in (
            await client.get(f"{JOBS}/pending", headers=WORKER_HEADERS),
            await client.patch(
                f"{JOBS}/{job_id}", json={"status": "running"}, headers=WORKER_HEADERS
            ),
        ):
            assert "enroll the worker" in error(response, 403, "invalid_worker_key")
        token = (await enroll_over_http(client, "box"))["token"]
        ok = await client.patch(
            f"{JOBS}/{job_id}", json={"status": "running"}, headers=bearer(token)
        )
        assert ok.status_code == 200, ok.text


async def test_an_enrolled_http_worker_shows_as_busy_then_idle(client: httpx.AsyncClient) -> None:
    enrolled = await enroll_over_http(client, "poller")
    worker = bearer(enrolled["token"])
    job_id = await create(client, ALICE)
    await client.patch(f"{JOBS}/{job_id}", json={"status": "running"}, headers=worker)

    async def status() -> str:
        data = (await client.get(f"{WORKERS}/{enrolled['worker']['id']}", headers=OPERATOR)).json()
        return str(data["data"]["status"])

    assert await status() == "busy"
    await client.patch(f"{JOBS}/{job_id}", json={"status": "completed"}, headers=worker)

    async def idle() -> bool:
        return await status() == "idle"

    await eventually(idle)
