"""Output namespaces through the real app over TCP: a name in someone else's namespace is refused
(admins included) and leaves nothing behind; admins grant and revoke organisation namespaces;
a linked Hugging Face account (checked against a stand-in Hub's `whoami-v2` on a loopback port)
gives its user name, is stored encrypted, never shown, and travels to the worker with the claim."""

import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import job_body, served_app, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine
from stand_in_hub import stand_in_hub, write_user

from contracts.rpc import JobSpec
from job_api.config import Settings
from job_api.entrypoints.deps import AppState, reading
from job_api.service_layer.dispatch import job_spec

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
NAMESPACES = "/api/namespaces"
ACCOUNT = "/api/account/huggingface"
ALICE = user_headers("alice")
BOB = user_headers("bob")
CAROL = user_headers("carol")
ROOT = user_headers("root", admin=True)
WRITE_TOKEN = "hf_bobWriteToken0123456789abcdefXYZ"
READ_TOKEN = "hf_bobReadToken0123456789abcdefXYZ"
ORG_TOKEN = "hf_orgToken0123456789abcdefXYZ"


ANSWERS: dict[str, dict[str, Any]] = {
    WRITE_TOKEN: write_user("bob-hf"),
    READ_TOKEN: {
        "type": "user",
        "name": "bob-hf",
        "auth": {"type": "access_token", "accessToken": {"role": "read"}},
    },
    ORG_TOKEN: {"type": "org", "name": "acme"},
}


def hub_answer(token: str) -> tuple[int, dict[str, Any]]:
    if token not in ANSWERS:
        return 401, {"error": "Invalid credentials"}
    return 200, ANSWERS[token]


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    message: str = error["message"]
    return message


async def _count(db: AsyncEngine, table: str) -> int:
    async with db.connect() as conn:
        query = sa.text(f"SELECT count(*) FROM jobs.{table}")  # noqa: S608
        return int((await conn.execute(query)).scalar_one())


async def _spec(state: AppState, job_id: str) -> JobSpec:
    """The JobSpec a claim of this job would hand the worker now."""
    async with reading(state) as uow:
        job = await uow.jobs.get(uuid.UUID(job_id))
        assert job is not None
        job.lease_expires_at = datetime.now(UTC) + timedelta(seconds=60)
        return await job_spec(uow, job, state.policy, "claim-secret")


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], output: str
) -> httpx.Response:
    return await client.post(JOBS, json=job_body(output_model=output), headers=headers)


async def test_a_name_in_another_users_namespace_is_refused_and_leaves_nothing(
    settings: Settings, db: AsyncEngine
) -> None:
    async with served_app(settings) as (client, _app):
        refused = await _create(client, BOB, "alice/emb1")
        message = _error(refused, 422, "output_namespace_not_yours")
        assert refused.json()["error"]["details"] == {"field": "output_model"}
        assert "bob" in message
        assert "alice" not in message  # nor anyone else's namespaces
        # Retry-safe creation checks the same rule.
        keyed = await client.post(
            JOBS,
            json=job_body(output_model="alice/emb1"),
            headers={**BOB, "Idempotency-Key": "k1"},
        )
        _error(keyed, 422, "output_namespace_not_yours")
        # Admins hold their own namespaces only.
        _error(await _create(client, ROOT, "alice/emb1"), 422, "output_namespace_not_yours")
        assert await _count(db, "jobs") == 0
        assert await _count(db, "outbox") == 0
        assert await _count(db, "idempotency_keys") == 0
        assert (await client.get(JOBS, headers=BOB)).json()["data"] == []
        # Their own namespace, whatever its case, is theirs.
        assert (await _create(client, ALICE, "alice/emb1")).status_code == 201
        assert (await _create(client, ALICE, "Alice/emb2")).status_code == 201


async def test_admins_grant_and_revoke_an_organisation_namespace(settings: Settings) -> None:
    grant = {"namespace": "acme", "user_id": "bob"}
    async with served_app(settings) as (client, _app):
        _error(await client.post(NAMESPACES, json=grant, headers=BOB), 403, "forbidden")
        _error(await _create(client, BOB, "acme/emb"), 422, "output_namespace_not_yours")

        created = await client.post(NAMESPACES, json=grant, headers=ROOT)
        assert created.status_code == 201, created.text
        data = created.json()["data"]
        assert (data["namespace"], data["user_id"], data["granted_by"]) == ("acme", "bob", "root")
        again = await client.post(
            NAMESPACES, json={"namespace": "ACME", "user_id": "bob"}, headers=ROOT
        )
        assert again.status_code == 200
        assert again.json()["data"]["namespace"] == "acme"

        mine = (await client.get(NAMESPACES, headers=BOB)).json()["data"]
        assert mine == [
            {"namespace": "bob", "source": "user"},
            {"namespace": "acme", "source": "grant"},
        ]
        assert (await client.get(NAMESPACES, headers=ALICE)).json()["data"] == [
            {"namespace": "alice", "source": "user"}
        ]
        as_admin = await client.get(NAMESPACES, headers=ROOT, params={"user_id": "bob"})
        assert as_admin.json()["data"] == mine
        _error(
            await client.get(NAMESPACES, headers=BOB, params={"user_id": "alice"}), 403, "forbidden"
        )

        assert (await _create(client, BOB, "acme/emb")).status_code == 201
        assert (await _create(client, BOB, "Acme/emb")).status_code == 201
        _error(await _create(client, CAROL, "acme/emb"), 422, "output_namespace_not_yours")

        revoke = f"{NAMESPACES}/acme"
        _error(
            await client.delete(revoke, headers=BOB, params={"user_id": "bob"}), 403, "forbidden"
        )
        revoked = await client.delete(revoke, headers=ROOT, params={"user_id": "bob"})
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["data"] == {"namespace": "acme", "user_id": "bob", "revoked": True}
        _error(
            await client.delete(revoke, headers=ROOT, params={"user_id": "bob"}),
            404,
            "namespace_grant_not_found",
        )
        _error(await _create(client, BOB, "acme/emb"), 422, "output_namespace_not_yours")

        bad = await client.post(
            NAMESPACES, json={"namespace": "no/slash", "user_id": "bob"}, headers=ROOT
        )
        _error(bad, 422, "validation_error")
        _error(await client.delete(revoke, headers=ROOT), 422, "validation_error")


async def test_a_linked_hub_account_gives_its_name_and_the_claim_carries_its_token(
    settings_factory: Callable[..., Settings], db: AsyncEngine
) -> None:
    # A user id that is not a Hub name gives no namespace of its own.
    dave = user_headers("auth0|dave")
    async with (
        stand_in_hub(hub_answer) as (hub, endpoint),
        served_app(settings_factory(hf_endpoint=endpoint)) as (client, app),
    ):
        state: AppState = app.state.service
        assert (await client.get(NAMESPACES, headers=dave)).json()["data"] == []
        assert (await client.get(ACCOUNT, headers=dave)).json()["data"] == {
            "linked": False,
            "hf_username": None,
            "linked_at": None,
        }
        message = _error(await _create(client, dave, "bob-hf/m"), 422, "output_namespace_not_yours")
        assert "You hold no namespace" in message

        linked = await client.put(ACCOUNT, json={"token": WRITE_TOKEN}, headers=dave)
        assert linked.status_code == 200, linked.text
        assert linked.json()["data"]["hf_username"] == "bob-hf"
        assert linked.json()["data"]["linked"] is True
        assert WRITE_TOKEN not in linked.text
        assert hub.seen == [f"Bearer {WRITE_TOKEN}"]
        shown = await client.get(ACCOUNT, headers=dave)
        assert shown.json()["data"]["hf_username"] == "bob-hf"
        assert WRITE_TOKEN not in shown.text
        async with db.connect() as conn:
            stored = (
                await conn.execute(
                    sa.text("SELECT hf_username, token_ciphertext FROM jobs.hf_accounts")
                )
            ).one()
        assert stored.hf_username == "bob-hf"
        assert WRITE_TOKEN not in stored.token_ciphertext
        assert state.policy.token_cipher is not None
        assert state.policy.token_cipher.decrypt(stored.token_ciphertext) == WRITE_TOKEN
        assert (await client.get(NAMESPACES, headers=dave)).json()["data"] == [
            {"namespace": "bob-hf", "source": "huggingface"}
        ]

        created = await _create(client, dave, "bob-hf/m")
        assert created.status_code == 201, created.text
        job_id = created.json()["data"]["id"]
        assert (await _spec(state, job_id)).hub_token == WRITE_TOKEN
        # Another user's job gets no token of dave's.
        alices = (await _create(client, ALICE, "alice/m")).json()["data"]["id"]
        assert (await _spec(state, alices)).hub_token is None

        unlinked = await client.delete(ACCOUNT, headers=dave)
        assert unlinked.status_code == 200
        assert unlinked.json()["data"]["linked"] is False
        assert await _count(db, "hf_accounts") == 0
        assert (await _spec(state, job_id)).hub_token is None
        _error(await _create(client, dave, "bob-hf/m2"), 422, "output_namespace_not_yours")


async def test_a_claim_sees_a_token_linked_after_the_owner_was_found_without_one(
    settings_factory: Callable[..., Settings], db: AsyncEngine
) -> None:
    """Claims remember, a few seconds, that an owner has no linked token (most have none, and a
    claim would read it every time); linking in this process forgets that at once, and an unlink
    is always read."""
    erin = user_headers("erin")
    async with (
        stand_in_hub(hub_answer) as (_hub, endpoint),
        served_app(settings_factory(hf_endpoint=endpoint)) as (client, app),
    ):
        state: AppState = app.state.service
        job_id = (await _create(client, erin, "erin/m")).json()["data"]["id"]
        assert (await _spec(state, job_id)).hub_token is None
        assert "erin" in state.caches.unlinked

        linked = await client.put(ACCOUNT, json={"token": WRITE_TOKEN}, headers=erin)
        assert linked.status_code == 200, linked.text
        assert (await _spec(state, job_id)).hub_token == WRITE_TOKEN
        assert (await client.delete(ACCOUNT, headers=erin)).status_code == 200
        assert (await _spec(state, job_id)).hub_token is None


async def test_tokens_that_cannot_push_link_nothing(
    settings_factory: Callable[..., Settings], db: AsyncEngine
) -> None:
    async with (
        stand_in_hub(hub_answer) as (_hub, endpoint),
        served_app(settings_factory(hf_endpoint=endpoint)) as (client, _app),
    ):
        for token, status, code in (
            ("hf_unknown0123456789", 422, "hf_token_invalid"),
            (READ_TOKEN, 422, "hf_token_read_only"),
            (ORG_TOKEN, 422, "hf_token_not_a_user"),
        ):
            refused = await client.put(ACCOUNT, json={"token": token}, headers=BOB)
            _error(refused, status, code)
            assert token not in refused.text
        for body in ({"token": "has space"}, {"token": ""}, {"token": "x" * 513}, {}):
            refused = await client.put(ACCOUNT, json=body, headers=BOB)
            _error(refused, 422, "validation_error")
            assert "has space" not in refused.text
        assert await _count(db, "hf_accounts") == 0

    # The Hub unreachable (a closed port): 502, nothing linked.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    async with served_app(settings_factory(hf_endpoint=endpoint)) as (client, _app):
        refused = await client.put(ACCOUNT, json={"token": WRITE_TOKEN}, headers=BOB)
        _error(refused, 502, "hf_unreachable")
    assert await _count(db, "hf_accounts") == 0


async def test_secrets_key_is_required_outside_development(
    settings_factory: Callable[..., Settings],
) -> None:
    with pytest.raises(ValueError, match="FTD_SECRETS_KEY must be set outside development"):
        settings_factory(secrets_key=None)
    development = settings_factory(environment="development", secrets_key=None)
    assert development.secrets_key is None
