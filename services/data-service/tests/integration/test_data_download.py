"""Workers' download: the data ticket (signature, expiry, dataset, stale attempt), Range, and
what job events do to a dataset (in use, released, deleted by retention)."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
from data_service_testing import (
    AMQP_URL,
    TICKET_SECRET,
    classifier_csv,
    eventually,
    files,
    publish_event,
    served,
    stored_files,
    user_headers,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import GPUProvider, JobStatus, JobType
from contracts.events import JobCreated, JobStatusChanged
from data_service.config import Settings
from data_service.entrypoints.app import create_app
from servicekit.tickets import mint_data_ticket

pytestmark = pytest.mark.integration


def ticket(
    dataset_id: str,
    job_id: uuid.UUID,
    attempt: int = 1,
    *,
    ttl: float = 600,
    secret: str = TICKET_SECRET,
) -> str:
    token, _ = mint_data_ticket(
        secret,
        dataset_id=uuid.UUID(dataset_id),
        job_id=job_id,
        attempt=attempt,
        ttl=timedelta(seconds=ttl),
    )
    return token


def bearer(token: str) -> dict[str, str]:
    """How a worker sends its data ticket: in a header, never in the URL."""
    return {"Authorization": f"Bearer {token}"}


async def upload(client: httpx.AsyncClient, body: bytes | None = None) -> dict:
    r = await client.post(
        "/api/finetune/upload", headers=user_headers(), **files(body or classifier_csv())
    )
    assert r.status_code == 201, r.text
    return r.json()["data"]


def created(job_id: uuid.UUID, dataset_id: str) -> JobCreated:
    return JobCreated(
        job_id=job_id,
        user_id="alice",
        job_type=JobType.CLASSIFIER,
        gpu_provider=GPUProvider.LOCAL,
        base_model="m",
        output_model="alice/m",
        dataset_id=uuid.UUID(dataset_id),
        hyperparameters={},
        created_at=datetime.now(UTC),
    )


def status(job_id: uuid.UUID, dataset_id: str, to: JobStatus, attempt: int) -> JobStatusChanged:
    return JobStatusChanged(
        job_id=job_id,
        user_id="alice",
        from_status=None,
        to_status=to,
        attempt=attempt,
        dataset_id=uuid.UUID(dataset_id),
    )


async def test_download_streams_the_exact_bytes_and_supports_range(
    data_client: httpx.AsyncClient,
) -> None:
    body = classifier_csv(40)
    ds = await upload(data_client, body)
    url = f"/api/finetune/datasets/{ds['id']}/download"
    r = await data_client.get(url, headers=bearer(ticket(ds["id"], uuid.uuid4())))
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["x-content-sha256"] == ds["sha256"]
    assert r.headers["accept-ranges"] == "bytes"
    part = await data_client.get(
        url, headers={**bearer(ticket(ds["id"], uuid.uuid4())), "Range": "bytes=10-29"}
    )
    assert part.status_code == 206
    assert part.content == body[10:30]


async def test_bad_tickets_are_refused(data_client: httpx.AsyncClient) -> None:
    ds = await upload(data_client)
    other = await upload(data_client)
    url = f"/api/finetune/datasets/{ds['id']}/download"
    good = ticket(ds["id"], uuid.uuid4())
    header, payload, signature = good.split(".")
    tampered_sig = (
        f"{header}.{payload}.{signature[:-4]}{'AAAA' if signature[-4:] != 'AAAA' else 'BBBB'}"
    )
    forged_claims = jwt.encode(
        {
            "aud": "ftd-data-download",
            "sub": ds["id"],
            "job": str(uuid.uuid4()),
            "att": 1,
            "exp": datetime.now(UTC) + timedelta(minutes=5),
        },
        "not-the-secret-0123456789abcdef-x",
        algorithm="HS256",
    )
    cases = {
        "tampered": tampered_sig,
        "wrong_secret": forged_claims,
        "expired": ticket(ds["id"], uuid.uuid4(), ttl=-5),
        "other_dataset": ticket(other["id"], uuid.uuid4()),
        "garbage": "not-a-ticket",
    }
    for name, token in cases.items():
        r = await data_client.get(url, headers=bearer(token))
        assert r.status_code == 403, name
        assert r.json()["error"]["code"] == "invalid_ticket", name
        assert token not in r.text
    missing = await data_client.get(url)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_ticket"
    assert missing.headers["www-authenticate"] == "Bearer"
    not_bearer = await data_client.get(url, headers={"Authorization": f"Basic {good}"})
    assert not_bearer.status_code == 401


async def test_a_ticket_in_the_url_is_refused_even_a_valid_one(
    data_client: httpx.AsyncClient,
) -> None:
    ds = await upload(data_client)
    url = f"/api/finetune/datasets/{ds['id']}/download"
    good = ticket(ds["id"], uuid.uuid4())
    for params, headers in (
        ({"ticket": good}, {}),
        ({"ticket": good}, bearer(good)),
        ({"ticket": ""}, bearer(good)),
    ):
        r = await data_client.get(url, params=params, headers=headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["code"] == "ticket_in_url"
        assert "Authorization: Bearer" in error["message"]
        assert good not in r.text
    assert (await data_client.get(url, headers=bearer(good))).status_code == 200


async def test_stale_attempt_is_refused(
    data_client: httpx.AsyncClient, data_settings: Settings
) -> None:
    ds = await upload(data_client)
    job_id = uuid.uuid4()
    url = f"/api/finetune/datasets/{ds['id']}/download"
    await publish_event(AMQP_URL, data_settings.broker_prefix, created(job_id, ds["id"]))
    await publish_event(
        AMQP_URL, data_settings.broker_prefix, status(job_id, ds["id"], JobStatus.RUNNING, 1)
    )
    await publish_event(
        AMQP_URL, data_settings.broker_prefix, status(job_id, ds["id"], JobStatus.PENDING, 1)
    )
    await publish_event(
        AMQP_URL, data_settings.broker_prefix, status(job_id, ds["id"], JobStatus.RUNNING, 2)
    )

    async def refused() -> bool:
        r = await data_client.get(url, headers=bearer(ticket(ds["id"], job_id, 1)))
        return r.status_code == 403 and r.json()["error"]["code"] == "stale_ticket"

    await eventually(refused)
    current = await data_client.get(url, headers=bearer(ticket(ds["id"], job_id, 2)))
    assert current.status_code == 200


async def test_in_use_dataset_cannot_be_deleted_until_its_job_ends(
    data_client: httpx.AsyncClient, data_settings: Settings, storage_dir: Path, data_db: AsyncEngine
) -> None:
    ds = await upload(data_client)
    job_id = uuid.uuid4()
    prefix = data_settings.broker_prefix
    await publish_event(AMQP_URL, prefix, created(job_id, ds["id"]))
    delete_url = f"/api/finetune/datasets/{ds['id']}"

    async def recorded() -> bool:
        async with data_db.connect() as conn:
            count = await conn.scalar(
                sa.text("SELECT count(*) FROM data.dataset_jobs WHERE job_id = :j"), {"j": job_id}
            )
        return count == 1

    await eventually(recorded)
    r = await data_client.delete(delete_url, headers=user_headers())
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "dataset_in_use"
    assert r.json()["error"]["details"]["jobs"] == [str(job_id)]
    await publish_event(AMQP_URL, prefix, status(job_id, ds["id"], JobStatus.CANCELLED, 1))

    async def deleted() -> bool:
        r = await data_client.delete(delete_url, headers=user_headers())
        return r.status_code == 200

    await eventually(deleted)
    assert stored_files(storage_dir) == []
    # The job has ended: its ticket no longer opens anything.
    r = await data_client.get(f"{delete_url}/download", headers=bearer(ticket(ds["id"], job_id, 1)))
    assert r.status_code == 403


async def test_retention_deletes_the_data_after_completion(
    data_settings_factory: object, storage_dir: Path
) -> None:
    settings = data_settings_factory(retention="delete_after_completion")  # type: ignore[operator]
    async with served(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        ds = await upload(client)
        kept = await upload(client)
        job_id = uuid.uuid4()
        prefix = settings.broker_prefix
        await publish_event(AMQP_URL, prefix, created(job_id, ds["id"]))
        await publish_event(AMQP_URL, prefix, status(job_id, ds["id"], JobStatus.RUNNING, 1))
        await publish_event(AMQP_URL, prefix, status(job_id, ds["id"], JobStatus.COMPLETED, 1))

        async def gone() -> bool:
            r = await client.get(f"/api/finetune/datasets/{ds['id']}", headers=user_headers())
            files_left = [p.name for p in stored_files(storage_dir)]
            return r.status_code == 404 and files_left == [kept["id"]]

        await eventually(gone)
