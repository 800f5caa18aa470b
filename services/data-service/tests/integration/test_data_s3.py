"""The S3 backend against moto's S3 server (started here on an ephemeral port): uploads become
objects, failures leave none, workers are redirected to a short-lived presigned URL only after
our own ticket check (moto does not verify presigned signatures, so the URL's security here is
the ticket's)."""

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from data_service_testing import TICKET_SECRET, classifier_csv, free_socket, served, user_headers
from minio import Minio

from data_service.config import Settings
from data_service.entrypoints.app import create_app
from servicekit.tickets import mint_data_ticket

pytestmark = pytest.mark.integration

BUCKET = "ftd-test-datasets"


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"http://{endpoint}/", timeout=1)
                break
            if process.poll() is not None:
                raise RuntimeError("moto server exited")
            import time

            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def minio_client(moto_endpoint: str) -> Minio:
    return Minio(moto_endpoint, access_key="test", secret_key="test", secure=False)


@pytest.fixture
async def s3_url(
    data_settings_factory: Callable[..., Settings], moto_endpoint: str
) -> AsyncIterator[str]:
    settings = data_settings_factory(
        storage_backend="s3",
        s3_endpoint=moto_endpoint,
        s3_bucket=BUCKET,
        s3_access_key="test",
        s3_secret_key="test",
        presigned_url_seconds=120,
    )
    async with served(create_app(settings)) as url:
        yield url


def objects(client: Minio) -> list[str]:
    return [o.object_name for o in client.list_objects(BUCKET, recursive=True)]


async def test_upload_to_s3_and_download_through_a_presigned_url(
    s3_url: str, minio_client: Minio
) -> None:
    body = classifier_csv(50)
    async with httpx.AsyncClient(base_url=s3_url, timeout=30) as client:
        r = await client.post(
            "/api/finetune/upload",
            headers=user_headers(),
            files={"file": ("train.csv", body, "text/csv")},
        )
        assert r.status_code == 201, r.text
        dataset_id = r.json()["data"]["id"]
        assert await asyncio.to_thread(objects, minio_client) == [f"datasets/{dataset_id}"]
        token, _ = mint_data_ticket(
            TICKET_SECRET,
            dataset_id=uuid.UUID(dataset_id),
            job_id=uuid.uuid4(),
            attempt=1,
            ttl=timedelta(minutes=5),
        )
        download = f"/api/finetune/datasets/{dataset_id}/download"
        redirect = await client.get(download, headers={"Authorization": f"Bearer {token}"})
        assert redirect.status_code == 307
        location = redirect.headers["location"]
        query = parse_qs(urlsplit(location).query)
        assert int(query["X-Amz-Expires"][0]) <= 120  # short-lived
        got = await client.get(location)
        assert got.status_code == 200
        assert got.content == body
        # No redirect (so no URL) without a valid ticket.
        refused = await client.get(download, headers={"Authorization": f"Bearer {token[:-3]}abc"})
        assert refused.status_code == 403
        assert "location" not in refused.headers
        preview = await client.get(
            f"/api/finetune/datasets/{dataset_id}/preview?rows=2", headers=user_headers()
        )
        assert preview.status_code == 200
        assert len(preview.json()["data"]["rows"]) == 2
        deleted = await client.delete(
            f"/api/finetune/datasets/{dataset_id}", headers=user_headers()
        )
        assert deleted.status_code == 200
    assert await asyncio.to_thread(objects, minio_client) == []


async def test_invalid_or_interrupted_uploads_leave_no_object(
    s3_url: str, minio_client: Minio
) -> None:
    async with httpx.AsyncClient(base_url=s3_url, timeout=30) as client:
        r = await client.post(
            "/api/finetune/upload",
            headers=user_headers(),
            files={
                "file": ("train.csv", b"text,label\n" + b"a,b\n" * 5 + b"x,y,z\n" * 3, "text/csv")
            },
        )
        assert r.status_code == 422
        # A large valid prefix (several S3 parts' worth of blocks) then a bad row at the end.
        big = classifier_csv(10) + b"some text,label\n" * 1_200_000 + b"a,b,c\n"
        r = await client.post(
            "/api/finetune/upload",
            headers=user_headers(),
            files={"file": ("big.csv", big, "text/csv")},
        )
        assert r.status_code == 422
        assert r.json()["error"]["details"]["errors"][0]["code"] == "wrong_field_count"
    assert await asyncio.to_thread(objects, minio_client) == []
    uploads = await asyncio.to_thread(
        lambda: list(minio_client._list_multipart_uploads(BUCKET).uploads)
    )
    assert uploads == []
