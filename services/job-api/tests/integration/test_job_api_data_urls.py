"""External training data URLs through the whole app: every internal or odd host is a 422 that
says why without echoing the URL and leaves nothing behind; public and allow-listed hosts pass."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import job_body, running_app, user_headers

from job_api.config import Settings

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
ALICE = user_headers("alice")

# (URL, whether the URL pattern already refuses it as malformed: brackets, dots, percent signs).
INTERNAL_URLS = [
    ("https://169.254.169.254/latest/meta-data/iam/security-credentials/", False),
    ("https://10.0.0.1/data.csv", False),
    ("https://127.0.0.1:5432/", False),
    ("https://0x7f000001/data.csv", False),
    ("https://2130706433/data.csv", False),
    ("https://0177.0.0.1/data.csv", False),
    ("https://127.1/data.csv", False),
    ("https://10.1/data.csv", False),
    ("https://0/data.csv", False),
    ("https://0.0.0.0:8000/data.csv", False),
    ("https://0xa9fea9fe/latest/meta-data/", False),
    ("https://2852039166/latest/meta-data/", False),
    ("https://0xa9.0xfe.0xa9.0xfe/latest/meta-data/", False),
    ("https://192.168.1.1/data.csv", False),
    ("https://172.16.0.1/data.csv", False),
    ("https://100.100.100.200/latest/meta-data/", False),
    ("https://224.0.0.1/data.csv", False),
    ("https://255.255.255.255/data.csv", False),
    ("https://metadata.google.internal/computeMetadata/v1/", False),
    ("https://METADATA.Google.Internal/computeMetadata/v1/", False),
    ("https://metadata/computeMetadata/v1/", False),
    ("https://metadata.goog/computeMetadata/v1/", False),
    ("https://instance-data/latest/meta-data/", False),
    ("https://instance-data.ec2.internal/latest/meta-data/", False),
    ("https://localhost:8000/api/finetune/jobs", False),
    ("https://LOCALHOST/data.csv", False),
    ("https://api.localhost/data.csv", False),
    ("https://kubernetes.default.svc/api", False),
    ("https://printer.local/data.csv", False),
    ("https://fileserver/data.csv", False),
    ("https://1.2.3.4.5/data.csv", False),
    ("https://[::1]/data.csv", True),
    ("https://[::ffff:127.0.0.1]/data.csv", True),
    ("https://[fe80::1%25eth0]/data.csv", True),
    ("https://[fd00:ec2::254]/latest/meta-data/", True),
    ("https://127.0.0.1./data.csv", True),
    ("https://%31%32%37.0.0.1/data.csv", True),
]

PUBLIC_URLS = [
    "https://storage.googleapis.com/my-bucket/data.csv",
    "https://my-bucket.s3.eu-west-1.amazonaws.com/train.jsonl?X-Amz-Signature=abc",
    "https://huggingface.co/datasets/alice/x/resolve/main/train.csv",
    "https://8.8.8.8/data.csv",
]


ROWS_LEFT = sa.text(
    "SELECT (SELECT count(*) FROM jobs.jobs) + (SELECT count(*) FROM jobs.job_events)"
    " + (SELECT count(*) FROM jobs.outbox)"
)


async def count_jobs(db: Any) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(ROWS_LEFT)).scalar_one())


@pytest.mark.parametrize(("url", "malformed"), INTERNAL_URLS)
async def test_internal_and_odd_data_urls_are_refused(
    client: httpx.AsyncClient, db: Any, url: str, malformed: bool
) -> None:
    response = await client.post(JOBS, json=job_body(training_data_url=url), headers=ALICE)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == ("invalid_training_data_url" if malformed else "data_url_refused")
    assert error["details"] == {"field": "training_data_url"}
    host = url.split("/")[2]
    if "." in host or ":" in host:  # (a bare `metadata` may well name its kind)
        assert host.lower() not in error["message"].lower()
    assert url not in response.text
    if not malformed:
        assert "its host is" in error["message"]
    assert await count_jobs(db) == 0


@pytest.mark.parametrize("url", PUBLIC_URLS)
async def test_public_data_urls_are_accepted(client: httpx.AsyncClient, db: Any, url: str) -> None:
    response = await client.post(JOBS, json=job_body(training_data_url=url), headers=ALICE)

    assert response.status_code == 201, response.text
    # Query strings (signatures) are not shown back.
    assert response.json()["data"]["training_data_url"] == url.split("?")[0]


async def test_the_operators_allow_list_admits_its_hosts(
    db: Any, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(data_url_allowed_hosts="files.internal, .corp.lan")
    async with running_app(settings) as client:
        for url in ("https://files.internal/data.csv", "https://a.corp.lan/data.csv"):
            response = await client.post(JOBS, json=job_body(training_data_url=url), headers=ALICE)
            assert response.status_code == 201, response.text
        refused = await client.post(
            JOBS, json=job_body(training_data_url="https://other.internal/x.csv"), headers=ALICE
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "data_url_refused"
