"""The model routes: isolation between users, the status machine, deletion, paging, and the
events deploy and delete publish through the outbox."""

import asyncio
import json
from typing import Any

import pytest
from registry_testing import AMQP_URL, MODELS, completed, eventually, publish, user_headers

from contracts.enums import JobType, ModelStore
from contracts.events import Envelope, ModelDeleted, ModelDeployed, payload_of
from contracts.routing import BrokerNames
from messaging.broker import Broker
from messaging.topology import QueueSpec, declare_queue

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")
BOB = user_headers("bob")


async def _register(client: Any, prefix: str, *events: Any) -> list[dict[str, Any]]:
    await publish(prefix, *events)
    ids = {str(e.job_id) for e in events}

    async def registered() -> list[dict[str, Any]] | None:
        r = await client.get(
            MODELS, headers=user_headers("admin", admin=True), params={"limit": 200}
        )
        found = [m for m in r.json()["data"] if m["job_id"] in ids]
        return found if len(found) == len(ids) else None

    found: list[dict[str, Any]] = await eventually(registered)
    by_job = {m["job_id"]: m for m in found}
    return [by_job[str(e.job_id)] for e in events]


async def test_users_see_only_their_own_models(registry: Any, registry_prefix: str) -> None:
    [model] = await _register(registry, registry_prefix, completed())
    path = f"{MODELS}/{model['id']}"
    assert (await registry.get(MODELS, headers=BOB)).json()["data"] == []
    for method, url in (
        ("GET", path),
        ("POST", f"{path}/deploy"),
        ("POST", f"{path}/undeploy"),
        ("DELETE", path),
    ):
        r = await registry.request(method, url, headers=BOB)
        assert r.status_code == 404, (method, url, r.text)
        assert r.json()["error"]["code"] == "model_not_found"
    assert (await registry.get(path, headers=ALICE)).json()["data"]["status"] == "registered"


async def test_auth_and_bad_ids(registry: Any) -> None:
    r = await registry.get(MODELS)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = await registry.get(MODELS, headers={"Authorization": "Bearer not-a-jwt"})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_token"
    # Model ids are UUIDs in the path itself (as job-api's): anything else is no such resource,
    # and /api/models/litellm-config can never be taken for a model id.
    r = await registry.get(f"{MODELS}/not-a-uuid", headers=ALICE)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = await registry.get(MODELS, headers=ALICE, params={"cursor": "garbage"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_cursor"


async def test_status_machine(registry: Any, registry_prefix: str) -> None:
    v1, v2 = await _register(registry, registry_prefix, completed(), completed())
    deploy = await registry.post(f"{MODELS}/{v1['id']}/deploy", headers=ALICE)
    assert deploy.status_code == 200, deploy.text
    assert deploy.json()["data"]["status"] == "deployed"
    assert deploy.json()["data"]["deployed_at"] is not None

    again = await registry.post(f"{MODELS}/{v1['id']}/deploy", headers=ALICE)
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "illegal_transition"
    assert error["message"] == "A deployed model cannot become deployed. It is deployed already."
    assert error["details"] == {"status": "deployed", "requested": "deployed"}

    not_deployed = await registry.post(f"{MODELS}/{v2['id']}/undeploy", headers=ALICE)
    assert not_deployed.status_code == 409
    assert not_deployed.json()["error"]["code"] == "illegal_transition"

    # Deploying v2 retires v1: one deployed version per name.
    r = await registry.post(f"{MODELS}/{v2['id']}/deploy", headers=ALICE)
    assert r.json()["data"]["status"] == "deployed"
    assert (await registry.get(f"{MODELS}/{v1['id']}", headers=ALICE)).json()["data"][
        "status"
    ] == "retired"

    in_use = await registry.delete(f"{MODELS}/{v2['id']}", headers=ALICE)
    assert in_use.status_code == 409
    assert in_use.json()["error"]["code"] == "model_deployed"

    r = await registry.post(f"{MODELS}/{v2['id']}/undeploy", headers=ALICE)
    assert r.json()["data"]["status"] == "retired"
    assert r.json()["data"]["retired_at"] is not None
    r = await registry.post(f"{MODELS}/{v2['id']}/undeploy", headers=ALICE)
    assert r.status_code == 409
    # A retired version can be deployed again.
    r = await registry.post(f"{MODELS}/{v2['id']}/deploy", headers=ALICE)
    assert r.json()["data"]["status"] == "deployed"


async def test_delete_leaves_the_hub_repo_unless_asked_and_able(
    registry: Any, registry_prefix: str
) -> None:
    hub, local = await _register(
        registry,
        registry_prefix,
        completed(),
        completed(
            output_model="alice/local-embed",
            store=ModelStore.LOCAL,
            uri="file:///srv/models/alice/local-embed/v1",
        ),
    )
    refused = await registry.delete(
        f"{MODELS}/{hub['id']}", headers=ALICE, params={"delete_repo": "true"}
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "hub_token_not_configured"
    assert "nothing was deleted" in refused.json()["error"]["message"]
    assert (await registry.get(f"{MODELS}/{hub['id']}", headers=ALICE)).status_code == 200

    not_hub = await registry.delete(
        f"{MODELS}/{local['id']}", headers=ALICE, params={"delete_repo": "true"}
    )
    assert not_hub.status_code == 422
    assert not_hub.json()["error"]["code"] == "not_a_hub_model"

    r = await registry.delete(f"{MODELS}/{hub['id']}", headers=ALICE)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data["deleted"] is True
    assert data["repo_deleted"] is False
    assert data["message"] == (
        "Removed alice/support-embed v1 from the registry; the Hub repository "
        "alice/support-embed was left as it is."
    )
    assert (await registry.get(f"{MODELS}/{hub['id']}", headers=ALICE)).status_code == 404
    assert (await registry.delete(f"{MODELS}/{hub['id']}", headers=ALICE)).status_code == 404


async def test_list_filters_and_pages(registry: Any, registry_prefix: str) -> None:
    emb, clf, lora = await _register(
        registry,
        registry_prefix,
        completed(),
        completed(output_model="alice/clf", job_type=JobType.CLASSIFIER),
        completed(output_model="alice/lora", job_type=JobType.LLM_LORA),
    )
    await registry.post(f"{MODELS}/{clf['id']}/deploy", headers=ALICE)
    r = await registry.get(MODELS, headers=ALICE, params={"type": "classifier"})
    assert [m["id"] for m in r.json()["data"]] == [clf["id"]]
    r = await registry.get(MODELS, headers=ALICE, params={"status": "registered"})
    assert {m["id"] for m in r.json()["data"]} == {emb["id"], lora["id"]}
    r = await registry.get(MODELS, headers=ALICE, params={"type": "nonsense"})
    assert r.status_code == 422

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = (await registry.get(MODELS, headers=ALICE, params=params)).json()
        assert page["limit"] == 1
        seen += [m["id"] for m in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert seen == [lora["id"], clf["id"], emb["id"]]


async def test_deploy_and_delete_are_published_through_the_outbox(
    registry: Any, registry_prefix: str
) -> None:
    names = BrokerNames(registry_prefix)
    broker = Broker(AMQP_URL, names, client_name="registry-test-listener")
    await broker.connect()
    try:
        channel = await broker.channel()
        queue_name = f"{registry_prefix}test.model-events"
        await declare_queue(
            channel,
            names,
            QueueSpec(name=queue_name, bindings=("model.deployed", "model.deleted")),
        )
        [model] = await _register(registry, registry_prefix, completed())
        path = f"{MODELS}/{model['id']}"
        assert (await registry.post(f"{path}/deploy", headers=ALICE)).status_code == 200
        assert (await registry.post(f"{path}/undeploy", headers=ALICE)).status_code == 200
        assert (await registry.delete(path, headers=ALICE)).status_code == 200

        queue = await channel.get_queue(queue_name)
        received: list[Envelope] = []

        async def three() -> bool:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                received.append(Envelope.model_validate(json.loads(message.body)))
            return len(received) == 3

        await eventually(three)
        payloads = [payload_of(e) for e in received]
        assert [type(p) for p in payloads] == [ModelDeployed, ModelDeployed, ModelDeleted]
        deployed, undeployed, deleted = payloads
        assert isinstance(deployed, ModelDeployed)
        assert deployed.deployed
        assert isinstance(undeployed, ModelDeployed)
        assert not undeployed.deployed
        assert isinstance(deleted, ModelDeleted)
        assert (str(deleted.model_id), deleted.version, deleted.user_id) == (
            model["id"],
            1,
            "alice",
        )
        assert all(e.source == "registry-service" for e in received)
        await channel.queue_delete(queue_name)
    finally:
        await broker.close()


async def test_concurrent_deploys_of_one_name_leave_one_deployed(
    registry: Any, registry_prefix: str
) -> None:
    versions = await _register(registry, registry_prefix, *(completed() for _ in range(4)))
    for _ in range(3):
        answers = await asyncio.gather(
            *(registry.post(f"{MODELS}/{v['id']}/deploy", headers=ALICE) for v in versions)
        )
        # Each deploy either wins or finds its version deployed already (a 409 that says so).
        assert {a.status_code for a in answers} <= {200, 409}, [a.text for a in answers]
        r = await registry.get(MODELS, headers=ALICE, params={"status": "deployed"})
        assert len(r.json()["data"]) == 1
