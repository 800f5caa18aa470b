"""PostgreSQL unreachable (a TCP proxy between job-api and PostgreSQL, cut): a read and a write,
sent to a real server over TCP, are answered 503 `service_unavailable` with Retry-After (never a
500, never a hang), and answered as usual once PostgreSQL is back."""

from typing import Any

import httpx
import pytest
from job_api_testing import eventually, job_body, served_app, user_headers
from messaging_testing import TcpProxy
from sqlalchemy.engine import make_url

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.timeout(120)
async def test_a_read_and_a_write_answer_503_with_retry_after_while_postgresql_is_unreachable(
    database_url: str, settings_factory: Any
) -> None:
    url = make_url(database_url)
    async with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        settings = settings_factory(
            database_url=proxied,
            access_log=False,
            run_relay=False,
            run_consumers=False,
            run_watchdog=False,
        )
        async with served_app(settings) as (client, _app):
            created = await client.post(JOBS, json=job_body(), headers=user_headers())
            assert created.status_code == 201, created.text
            job_id = created.json()["data"]["id"]

            proxy.cut()
            _unavailable(await client.get(f"{JOBS}/{job_id}", headers=user_headers()))
            _unavailable(await client.post(JOBS, json=job_body(), headers=user_headers()))

            proxy.restore()

            async def served() -> bool:
                response = await client.get(f"{JOBS}/{job_id}", headers=user_headers())
                return response.status_code == 200

            await eventually(served, timeout=30)
            again = await client.post(JOBS, json=job_body(), headers=user_headers())
            assert again.status_code == 201, again.text
