"""A signed token whose subject is not a sane user id (a NUL, which PostgreSQL text refuses; a
control character; an absurd length) is a 401 `invalid_token` before any query runs."""

import httpx
import pytest
from data_service_testing import classifier_csv, files, user_headers

pytestmark = pytest.mark.integration

SUBJECTS = ["alice\x00", "\x00", "bob\nadmin", "x" * 10_000]


@pytest.mark.parametrize("subject", SUBJECTS, ids=["nul", "only-nul", "newline", "long"])
async def test_an_insane_subject_is_a_401(data_client: httpx.AsyncClient, subject: str) -> None:
    listed = await data_client.get("/api/finetune/datasets", headers=user_headers(subject))
    uploaded = await data_client.post(
        "/api/finetune/upload", headers=user_headers(subject), **files(classifier_csv())
    )
    for r in (listed, uploaded):
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_token"
    ok = await data_client.get("/api/finetune/datasets", headers=user_headers("alice"))
    assert ok.status_code == 200
    assert ok.json()["data"] == []
