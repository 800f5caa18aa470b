"""PostgreSQL unreachable (this module's PostgreSQL, one the test may take away: killed and
started again, tests/support/disposable.py): a read and a write, sent to a real server over TCP,
are answered 503 `service_unavailable` with Retry-After (never a 500, never a hang), and answered
as usual once PostgreSQL is back."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from job_api_testing import eventually, job_body, served_app, user_headers

from job_api.entrypoints.cli import migrate

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


@pytest.fixture(scope="module")
async def outage_postgres(killable_postgres: Any) -> AsyncIterator[Any]:
    async with killable_postgres() as server:
        yield server


@pytest.fixture(scope="module")
async def database_url(outage_postgres: Any) -> AsyncIterator[str]:
    """This module's job-api database, on a PostgreSQL a test may take away."""
    async with outage_postgres.database(schema="jobs", migrate=migrate) as url:
        yield url


@pytest.fixture
async def postgres(outage_postgres: Any) -> AsyncIterator[Any]:
    yield outage_postgres
    await outage_postgres.start()  # up for the next test, whatever this one did


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.timeout(120)
async def test_a_read_and_a_write_answer_503_with_retry_after_while_postgresql_is_unreachable(
    database_url: str, settings_factory: Any, postgres: Any
) -> None:
    settings = settings_factory(
        database_url=postgres.client_url(database_url),
        access_log=False,
        run_relay=False,
        run_consumers=False,
        run_watchdog=False,
    )
    async with served_app(settings) as (client, _app):
        created = await client.post(JOBS, json=job_body(), headers=user_headers())
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["id"]

        await postgres.kill()
        _unavailable(await client.get(f"{JOBS}/{job_id}", headers=user_headers()))
        _unavailable(await client.post(JOBS, json=job_body(), headers=user_headers()))

        await postgres.start()

        async def served() -> bool:
            response = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
            return response.status_code == 200

        await eventually(served, timeout=30)
        again = await client.post(JOBS, json=job_body(), headers=user_headers())
        assert again.status_code == 201, again.text
