"""A signed token whose subject is not a sane user id (a NUL, which PostgreSQL text refuses; a
control character; an absurd length) is a 401 `invalid_token` before any query runs."""

from typing import Any

import pytest
from registry_testing import user_headers

pytestmark = pytest.mark.integration

SUBJECTS = ["alice\x00", "\x00", "bob\nadmin", "x" * 10_000]


@pytest.mark.parametrize("subject", SUBJECTS, ids=["nul", "only-nul", "newline", "long"])
async def test_an_insane_subject_is_a_401(registry: Any, subject: str) -> None:
    for path in ("/api/models", "/api/models/litellm-config"):
        r = await registry.get(path, headers=user_headers(subject))
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_token"
    assert (await registry.get("/api/models", headers=user_headers("alice"))).status_code == 200
