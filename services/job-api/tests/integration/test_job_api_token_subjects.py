"""A signed token whose subject is not a sane user id (a NUL, which PostgreSQL text refuses; a
control character; an absurd length) is a 401 `invalid_token` before any query runs."""

import httpx
import pytest
from job_api_testing import user_headers

pytestmark = pytest.mark.integration

SUBJECTS = ["alice\x00", "\x00", "bob\nadmin", "x" * 10_000]


@pytest.mark.parametrize("subject", SUBJECTS, ids=["nul", "only-nul", "newline", "long"])
async def test_an_insane_subject_is_a_401(client: httpx.AsyncClient, subject: str) -> None:
    for method, path in (("GET", "/api/finetune/jobs"), ("GET", "/api/finetune/jobs/stream")):
        r = await client.request(method, path, headers=user_headers(subject))
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_token"
        assert r.headers["www-authenticate"] == "Bearer"
    assert (
        await client.get("/api/finetune/jobs", headers=user_headers("alice"))
    ).status_code == 200
