"""The development sign-in (`/api/auth/dev-token`): offered only with FTD_ENV=development, mints
a working user token (never an admin one), refuses odd user ids, and is 404 everywhere else."""

from collections.abc import Callable

import jwt
import pytest
from job_api_testing import JWT_SECRET, running_app

from job_api.config import Settings

pytestmark = pytest.mark.integration

ROUTE = "/api/auth/dev-token"


async def test_outside_development_both_routes_are_404(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory(environment="test")) as client:
        for response in (await client.get(ROUTE), await client.post(ROUTE, json={"sub": "alice"})):
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "dev_sign_in_disabled"
            assert "access_token" not in response.text


async def test_in_development_it_mints_a_user_token_that_the_api_accepts(
    settings_factory: Callable[..., Settings],
) -> None:
    async with running_app(settings_factory(environment="development")) as client:
        status = await client.get(ROUTE)
        assert status.status_code == 200
        assert status.json() == {"data": {"enabled": True}}

        minted = await client.post(ROUTE, json={"sub": "alice"})
        assert minted.status_code == 200, minted.text
        data = minted.json()["data"]
        assert data["token_type"] == "bearer"
        assert data["expires_in"] == 24 * 3600
        claims = jwt.decode(data["access_token"], JWT_SECRET, algorithms=["HS256"])
        assert claims["sub"] == "alice"
        assert claims["roles"] == []
        assert claims["exp"] - claims["iat"] == 24 * 3600
        assert JWT_SECRET not in minted.text

        headers = {"Authorization": f"Bearer {data['access_token']}"}
        jobs = await client.get("/api/finetune/jobs", headers=headers)
        assert jobs.status_code == 200, jobs.text


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"sub": ""},
        {"sub": " alice"},
        {"sub": "../etc/passwd"},
        {"sub": "a" * 65},
        {"sub": "alice", "roles": ["admin"]},
        {"sub": 42},
    ],
)
async def test_odd_user_ids_and_extra_claims_are_refused(
    settings_factory: Callable[..., Settings], body: dict[str, object]
) -> None:
    async with running_app(settings_factory(environment="development")) as client:
        response = await client.post(ROUTE, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"]
        assert error["message"]
        assert "access_token" not in response.text
