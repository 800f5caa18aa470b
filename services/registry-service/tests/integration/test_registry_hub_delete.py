"""`DELETE /api/models/{id}?delete_repo=true` with a Hub token: the Hub repository is deleted
(through huggingface_hub, against a stand-in Hub on a local port) only when this version's push
created it and no other registered version, of any user, names it; a Hub refusal leaves the
registry unchanged."""

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import huggingface_hub.constants
import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from registry_testing import MODELS, completed, eventually, publish, running_app, user_headers

from registry_service.config import Settings

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")
HUB_TOKEN = "hf_test_token_0123456789"


class FakeHub:
    """Answers huggingface_hub's `DELETE /api/repos/delete`; records what it was asked."""

    def __init__(self) -> None:
        self.deleted: list[dict[str, Any]] = []
        self.refuse = False
        self.app = FastAPI()

        @self.app.delete("/api/repos/delete")
        async def delete(request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {HUB_TOKEN}":
                return JSONResponse({"error": "unauthorized"}, status_code=401)
            if self.refuse:
                return JSONResponse({"error": "forbidden"}, status_code=403)
            self.deleted.append(json.loads(await request.body()))
            return JSONResponse({})


@contextlib.asynccontextmanager
async def hub_running() -> AsyncIterator[tuple[FakeHub, str]]:
    hub = FakeHub()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(hub.app, log_config=None, access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:

        async def started() -> bool:
            return server.started

        await eventually(started, timeout=30)
        yield hub, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
        sock.close()


async def _registered(client: Any, headers: dict[str, str], count: int) -> list[Any]:
    async def registered() -> list[Any] | None:
        data: list[Any] = (await client.get(MODELS, headers=headers)).json()["data"]
        return data if len(data) == count else None

    found: list[Any] = await eventually(registered)
    return found


@contextlib.asynccontextmanager
async def registry_with_hub(
    registry_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeHub, Any]]:
    # The stand-in Hub is on this machine: huggingface_hub's offline switch (set for test runs
    # so nothing is downloaded) would refuse to call it.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    async with (
        hub_running() as (hub, endpoint),
        running_app(registry_settings(hf_token=HUB_TOKEN, hf_endpoint=endpoint)) as client,
    ):
        yield hub, client


async def test_delete_repo_with_a_token(
    registry_settings: Callable[..., Settings],
    registry_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with registry_with_hub(registry_settings, monkeypatch) as (hub, client):
        # v1's push created the repository, v2's pushed a revision into it.
        v1 = completed(revision="a" * 40, created_repo=True)
        v2 = completed(revision="b" * 40)
        await publish(registry_prefix, v1, v2)
        by_job = {m["job_id"]: m for m in await _registered(client, ALICE, 2)}
        first, second = by_job[str(v1.job_id)], by_job[str(v2.job_id)]
        assert (first["created_repo"], second["created_repo"]) == (True, False)

        shared = await client.delete(
            f"{MODELS}/{first['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert shared.status_code == 409
        assert shared.json()["error"]["code"] == "repo_shared"
        not_created = await client.delete(
            f"{MODELS}/{second['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert not_created.status_code == 409
        assert not_created.json()["error"]["code"] == "repo_not_created_by_push"
        assert "Nothing was deleted" in not_created.json()["error"]["message"]
        assert hub.deleted == []

        # Only the version removed, the repository kept.
        r = await client.delete(f"{MODELS}/{second['id']}", headers=ALICE)
        assert r.json()["data"]["repo_deleted"] is False
        assert hub.deleted == []

        hub.refuse = True
        refused = await client.delete(
            f"{MODELS}/{first['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "hub_delete_failed"
        assert (await client.get(f"{MODELS}/{first['id']}", headers=ALICE)).status_code == 200

        hub.refuse = False
        r = await client.delete(
            f"{MODELS}/{first['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"]["repo_deleted"] is True
        assert r.json()["data"]["message"] == (
            "Removed alice/support-embed v1 from the registry and deleted the Hub repository "
            "alice/support-embed."
        )
        assert hub.deleted == [{"name": "support-embed", "organization": "alice", "type": "model"}]
        assert (await client.get(f"{MODELS}/{first['id']}", headers=ALICE)).status_code == 404


async def test_another_users_version_of_the_repo_blocks_its_deletion(
    registry_settings: Callable[..., Settings],
    registry_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's push created acme/emb (an organisation namespace both hold); Bob pushed a version
    into it (naming it in another case). Alice may not delete Bob's model with hers."""
    bob = user_headers("bob")
    async with registry_with_hub(registry_settings, monkeypatch) as (hub, client):
        alices = completed(output_model="acme/emb", created_repo=True)
        bobs = completed(user_id="bob", output_model="ACME/emb")
        await publish(registry_prefix, alices, bobs)
        [alice_model] = await _registered(client, ALICE, 1)
        [bob_model] = await _registered(client, bob, 1)

        shared = await client.delete(
            f"{MODELS}/{alice_model['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert shared.status_code == 409, shared.text
        assert shared.json()["error"]["code"] == "repo_shared"
        assert "other users'" in shared.json()["error"]["message"]
        assert hub.deleted == []
        assert (await client.get(f"{MODELS}/{bob_model['id']}", headers=bob)).status_code == 200

        assert (await client.delete(f"{MODELS}/{bob_model['id']}", headers=bob)).status_code == 200
        r = await client.delete(
            f"{MODELS}/{alice_model['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert r.status_code == 200, r.text
        assert hub.deleted == [{"name": "emb", "organization": "acme", "type": "model"}]


async def test_only_the_output_models_repo_counts_as_created(
    registry_settings: Callable[..., Settings],
    registry_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with registry_with_hub(registry_settings, monkeypatch) as (hub, client):
        # A report naming another repository than the job's output model: never deletable.
        elsewhere = completed(repo_id="alice/someone-elses", created_repo=True)
        await publish(registry_prefix, elsewhere)
        [model] = await _registered(client, ALICE, 1)
        assert model["created_repo"] is False
        r = await client.delete(
            f"{MODELS}/{model['id']}", headers=ALICE, params={"delete_repo": "true"}
        )
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "repo_not_created_by_push"
        assert hub.deleted == []
