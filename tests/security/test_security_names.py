"""A name (`owner/model`) belongs to its owner and nothing shown carries a server path (the
review's naming findings), on the running stack.

The review created a job with `output_model: "alice/emb1"` as bob (201), found two users' local
models sharing one store folder, could delete a Hub repository no version of theirs had created,
and read `file:///...` server paths in model URIs and the LiteLLM configuration. Here bob is
refused alice's name; alice and bob, both granted an organisation namespace, train the same
output name on the stack's CPU worker and get two folders; the registry deletes a repository
(at a stand-in Hub) only for the version whose push created it and only once no other version
names it; URIs and the LiteLLM configuration name models, never paths.
"""

import csv
import io
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import yaml
from security_stack import SecurityStack, client
from security_workers import Enrolled, create_job, ended, enroll, job_request, linked, poll

from contracts.enums import ModelStore
from contracts.events import ModelPushed
from contracts.store import owner_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ORG = "acme-sec"
SHARED_NAME = f"{ORG}/shared-emb"
EXTERNAL = "https://storage.googleapis.com/ftd-examples/pairs.csv"


@pytest.fixture(scope="module")
async def granted(stack: SecurityStack) -> list[str]:
    """An operator grants the organisation namespace to alice and bob."""
    users = ["alice", "bob"]
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        for user in users:
            r = await http.post(
                "/api/namespaces",
                json={"namespace": ORG, "user_id": user},
                headers=stack.admin_headers(),
            )
            assert r.status_code in (200, 201), r.text
    return users


@pytest.fixture
async def alice(stack: SecurityStack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, "alice") as http:
        yield http


@pytest.fixture
async def bob(stack: SecurityStack) -> AsyncIterator[httpx.AsyncClient]:
    async with client(stack, "bob") as http:
        yield http


async def test_bob_cannot_name_his_output_in_alices_namespace(
    bob: httpx.AsyncClient, granted: list[str]
) -> None:
    before = (await bob.get("/api/finetune/jobs", params={"limit": 200})).json()["data"]
    r = await bob.post("/api/finetune/jobs", json=job_request("alice/emb1", EXTERNAL))

    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "output_namespace_not_yours"
    assert "bob" in error["message"], "it names the caller's own namespaces"
    assert ORG in error["message"]
    assert "alice/" not in error["message"].replace("alice/emb1", "")
    after = (await bob.get("/api/finetune/jobs", params={"limit": 200})).json()["data"]
    assert after == before, "nothing was created"
    # His own namespace and the granted one are his.
    mine = (await bob.get("/api/namespaces")).json()["data"]
    assert {n["namespace"] for n in mine} >= {"bob", ORG}
    assert "alice" not in {n["namespace"] for n in mine}


def _pairs_csv(owner: str) -> bytes:
    """Each owner's own rows: their models differ (a revision is a hash of the files)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["anchor", "positive"])
    for i in range(12):
        writer.writerow([f"what is {owner}'s item {i}?", f"item {i} of {owner} is thing {i}"])
    return out.getvalue().encode()


async def _train(http: httpx.AsyncClient, owner: str, output: str) -> dict[str, Any]:
    r = await http.post(
        "/api/finetune/upload",
        data={"job_type": "embedding"},
        files={"file": ("pairs.csv", _pairs_csv(owner), "text/csv")},
    )
    assert r.status_code == 201, r.text
    return await create_job(
        http,
        job_request(
            output,
            r.json()["data"]["training_data_url"],
            provider="local",
            hyperparameters={"epochs": 1, "batch_size": 8, "max_seq_length": 16},
        ),
    )


async def _registered(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        models = (await http.get("/api/models", params={"limit": 200})).json()["data"]
        return next((m for m in models if m["job_id"] == job_id), None)

    model: dict[str, Any] = await poll(found, timeout=60, what="the model in the registry")
    return model


def _no_server_path(stack: SecurityStack, text: str) -> None:
    assert "file://" not in text
    for path in (stack.root, stack.stack.model_store, stack.root.resolve()):
        assert str(path) not in text
    assert tempfile.gettempdir() + "/" not in text


@pytest.mark.training
async def test_two_owners_of_one_name_get_separate_folders_and_see_no_paths(
    stack: SecurityStack, alice: httpx.AsyncClient, bob: httpx.AsyncClient, granted: list[str]
) -> None:
    pytest.importorskip("torch", reason="the training stack is not installed")
    jobs = {
        "alice": await _train(alice, "alice", SHARED_NAME),
        "bob": await _train(bob, "bob", SHARED_NAME),
    }
    clients = {"alice": alice, "bob": bob}
    models: dict[str, dict[str, Any]] = {}
    for user, job in jobs.items():
        done = await ended(clients[user], job["id"], timeout=300)
        assert done["status"] == "completed", (done, stack.log("worker")[-3000:])
        models[user] = await _registered(clients[user], job["id"])

    folders = {}
    for user, model in models.items():
        assert model["name"] == SHARED_NAME
        assert model["store"] == "local"
        assert model["uri"] == f"local://{SHARED_NAME}@{model['revision']}"
        folders[user] = stack.stack.model_store / owner_key(user) / SHARED_NAME / model["revision"]
        assert (folders[user] / "config.json").is_file(), folders[user]
    # A folder per owner: neither version replaced nor joined the other.
    assert models["alice"]["revision"] != models["bob"]["revision"], "different data"
    for user in clients:
        stored = {p.name for p in folders[user].parent.iterdir()}
        assert stored == {models[user]["revision"]}, (user, stored)

    # Each sees their own version only.
    for user, http in clients.items():
        listed = (await http.get("/api/models", params={"limit": 200})).json()["data"]
        ids = {m["id"] for m in listed}
        other = "bob" if user == "alice" else "alice"
        assert models[user]["id"] in ids
        assert models[other]["id"] not in ids
        r = await http.get(f"/api/models/{models[other]['id']}")
        assert r.status_code == 404, r.text

    # Deployed, each user's LiteLLM configuration lists their model, by name, without a path.
    r = await alice.post(f"/api/models/{models['alice']['id']}/deploy")
    assert r.status_code == 200, r.text
    bobs_config = (await bob.get("/api/models/litellm-config")).json()["data"]
    assert models["alice"]["id"] not in json.dumps(bobs_config), "nothing of alice's for bob"
    r = await bob.post(f"/api/models/{models['bob']['id']}/deploy")
    assert r.status_code == 200, r.text
    for user, http in clients.items():
        config = (await http.get("/api/models/litellm-config")).json()["data"]
        listed = [e["model_info"]["id"] for e in config["model_list"]]
        assert listed == [models[user]["id"]], (user, config)
        assert config["model_list"][0]["model_info"]["ftd_uri"] == models[user]["uri"]
        shown = [
            json.dumps(config),
            (await http.get("/api/models/litellm-config", params={"format": "yaml"})).text,
            (await http.get("/api/models", params={"limit": 200})).text,
            (await http.get(f"/api/models/{models[user]['id']}")).text,
            (await http.get(f"/api/finetune/jobs/{jobs[user]['id']}")).text,
            json.dumps((await http.get(f"/api/finetune/jobs/{jobs[user]['id']}/events")).json()),
        ]
        for text in shown:
            _no_server_path(stack, text)
        assert yaml.safe_load(shown[1])["model_list"][0]["model_info"]["id"] == models[user]["id"]
    for user, http in clients.items():
        await http.post(f"/api/models/{models[user]['id']}/undeploy")


async def _pushed_to_the_hub(
    http: httpx.AsyncClient, worker: Enrolled, output: str, *, created_repo: bool
) -> dict[str, Any]:
    """A job completed by `worker` (over the broker), which reports a push to the Hub."""
    job = await create_job(http, job_request(output, EXTERNAL))
    async with linked(worker) as link:
        reply = await link.request_claim(uuid.UUID(job["id"]))
        assert reply.granted, reply
        assert reply.job is not None
        await link.publish(
            ModelPushed(
                **link.report_fields(reply.job),  # type: ignore[arg-type]
                repo_id=output,
                revision=uuid.uuid4().hex,
                store=ModelStore.HUB,
                uri=f"hf://{output}@main",
                created_repo=created_repo,
            )
        )
    return await _registered(http, job["id"])


async def test_a_repository_is_deleted_only_by_the_version_that_created_it_and_last(
    stack: SecurityStack, alice: httpx.AsyncClient, bob: httpx.AsyncClient, granted: list[str]
) -> None:
    repo = f"{ORG}/hub-model-{uuid.uuid4().hex[:6]}"
    worker = await enroll(stack, "names-hub-pusher")
    alices = await _pushed_to_the_hub(alice, worker, repo, created_repo=True)
    bobs = await _pushed_to_the_hub(bob, worker, repo, created_repo=False)
    assert (alices["created_repo"], bobs["created_repo"]) == (True, False)

    # Bob's push did not create the repository: he may not delete it.
    r = await bob.delete(f"/api/models/{bobs['id']}", params={"delete_repo": "true"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "repo_not_created_by_push"
    # Alice's did, but bob's version still names it.
    r = await alice.delete(f"/api/models/{alices['id']}", params={"delete_repo": "true"})
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "repo_shared"
    # (A delete asks the Hub before it answers: nothing is in flight after a refusal.)
    assert stack.hub.deletes() == [], "the Hub was asked for nothing"
    for http, model in ((alice, alices), (bob, bobs)):
        assert (await http.get(f"/api/models/{model['id']}")).status_code == 200, "both stay"

    # Once bob's version is gone (his files left alone), alice's deletes the repository.
    r = await bob.delete(f"/api/models/{bobs['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["data"]["repo_deleted"] is False
    r = await alice.delete(f"/api/models/{alices['id']}", params={"delete_repo": "true"})
    assert r.status_code == 200, r.text
    assert r.json()["data"]["repo_deleted"] is True
    deleted = stack.hub.deletes()
    assert len(deleted) == 1, deleted
    assert f"{deleted[0].get('organization')}/{deleted[0]['name']}" == repo, deleted
