"""Model versions are registered from model.completed through the real broker and the inbox."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from registry_testing import MODELS, completed, eventually, publish, user_headers

from contracts.enums import JobType, ModelStore

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")


async def _models(client: Any, headers: dict[str, str] = ALICE, **params: Any) -> list[Any]:
    r = await client.get(MODELS, headers=headers, params=params)
    assert r.status_code == 200, r.text
    data: list[Any] = r.json()["data"]
    return data


async def _wait_for(client: Any, count: int) -> list[Any]:
    async def enough() -> list[Any] | None:
        models = await _models(client)
        return models if len(models) >= count else None

    result: list[Any] = await eventually(enough)
    return result


async def test_a_completed_job_registers_a_version_with_everything_it_reported(
    registry: Any, registry_prefix: str
) -> None:
    event = completed(project_id="p1", dataset_id=uuid.uuid4())
    await publish(registry_prefix, event)
    [model] = await _wait_for(registry, 1)
    assert model["name"] == "alice/support-embed"
    assert model["version"] == 1
    assert model["status"] == "registered"
    assert model["job_id"] == str(event.job_id)
    assert model["user_id"] == "alice"
    assert model["job_type"] == "embedding"
    assert model["base_model"] == event.base_model
    assert model["repo_id"] == event.repo_id
    assert model["revision"] == event.revision
    assert model["store"] == "hub"
    assert model["uri"] == event.uri
    assert model["metrics"] == {"eval_loss": 0.12}
    assert model["baseline_metrics"] == {"eval_loss": 0.3}
    assert model["data_stats"] == {"rows": 120}
    assert model["hyperparameters"] == {"epochs": 1}
    assert model["project_id"] == "p1"
    assert model["dataset_id"] == str(event.dataset_id)
    assert datetime.fromisoformat(model["created_at"]) == event.completed_at
    one = await registry.get(f"{MODELS}/{model['id']}", headers=ALICE)
    assert one.status_code == 200
    assert one.json()["data"] == model


async def test_versions_count_per_output_name(registry: Any, registry_prefix: str) -> None:
    base = datetime.now(UTC)
    await publish(
        registry_prefix,
        completed(completed_at=base),
        completed(completed_at=base + timedelta(seconds=1)),
        completed(output_model="alice/other", completed_at=base + timedelta(seconds=2)),
    )
    models = await _wait_for(registry, 3)
    assert [(m["name"], m["version"]) for m in models] == [
        ("alice/other", 1),
        ("alice/support-embed", 2),
        ("alice/support-embed", 1),
    ]
    named = await _models(registry, name="alice/support-embed")
    assert [m["version"] for m in named] == [2, 1]


async def test_a_redelivered_event_registers_nothing(registry: Any, registry_prefix: str) -> None:
    event = completed()
    [envelope] = await publish(registry_prefix, event)
    # The same event again (the relay re-publishes after a lost confirm): the inbox skips it.
    await publish(registry_prefix, event, event_id=envelope.id)
    # Another event for the same job (a new id): the job is registered already.
    await publish(registry_prefix, event)
    # A later, different job proves the queue has been drained past the duplicates.
    await publish(registry_prefix, completed(output_model="alice/marker"))
    models = await _wait_for(registry, 2)
    assert sorted(m["name"] for m in models) == ["alice/marker", "alice/support-embed"]
    assert [m["version"] for m in models if m["name"] == "alice/support-embed"] == [1]


async def test_events_out_of_order(registry: Any, registry_prefix: str) -> None:
    """Versions follow registration; the list follows completion time; and a completion that
    arrives after its model was deleted does not bring the model back."""
    base = datetime.now(UTC)
    later, earlier = completed(completed_at=base), completed(completed_at=base - timedelta(hours=1))
    await publish(registry_prefix, later, earlier)
    models = await _wait_for(registry, 2)
    assert [(m["job_id"], m["version"]) for m in models] == [
        (str(later.job_id), 1),
        (str(earlier.job_id), 2),
    ]
    gone = models[0]
    deleted = await registry.delete(f"{MODELS}/{gone['id']}", headers=ALICE)
    assert deleted.status_code == 200, deleted.text
    await publish(registry_prefix, later)  # a stale copy with a new event id
    await publish(registry_prefix, completed(output_model="alice/marker"))
    models = await _wait_for(registry, 2)
    assert str(later.job_id) not in {m["job_id"] for m in models}
    # A new completion of the same name gets a fresh number: 1 is never reused.
    await publish(registry_prefix, completed())
    models = await _wait_for(registry, 3)
    assert sorted(m["version"] for m in models if m["name"] == "alice/support-embed") == [2, 3]


async def test_another_users_completion_is_theirs_alone(
    registry: Any, registry_prefix: str
) -> None:
    await publish(registry_prefix, completed(user_id="bob", output_model="bob/support-embed"))
    bob = user_headers("bob")

    async def registered() -> list[Any]:
        return await _models(registry, bob)

    [model] = await eventually(registered)
    assert model["name"] == "bob/support-embed"
    assert await _models(registry) == []


async def test_a_model_in_a_workers_store_is_shown_without_the_workers_path(
    registry: Any, registry_prefix: str
) -> None:
    legacy = completed(
        output_model="alice/local-embed",
        store=ModelStore.LOCAL,
        revision="9c1e",
        uri="file:///srv/worker/.dev/models/alice/local-embed/9c1e",
    )
    current = completed(
        output_model="alice/local-clf",
        job_type=JobType.CLASSIFIER,
        store=ModelStore.LOCAL,
        revision="77ab",
        uri="local://alice/local-clf@77ab",
    )
    await publish(registry_prefix, legacy, current)
    models = {m["name"]: m for m in await _wait_for(registry, 2)}
    assert models["alice/local-embed"]["uri"] == "local://alice/local-embed@9c1e"
    assert models["alice/local-clf"]["uri"] == "local://alice/local-clf@77ab"
    for model in models.values():
        r = await registry.post(f"{MODELS}/{model['id']}/deploy", headers=ALICE)
        assert r.status_code == 200, r.text
    config = await registry.get(f"{MODELS}/litellm-config", headers=ALICE)
    [entry] = config.json()["data"]["model_list"]
    assert entry["model_info"]["ftd_uri"] == "local://alice/local-embed@9c1e"
    seen = [
        (await registry.get(MODELS, headers=ALICE)).text,
        config.text,
        (
            await registry.get(f"{MODELS}/litellm-config", headers=ALICE, params={"format": "yaml"})
        ).text,
    ]
    for model in models.values():
        await registry.post(f"{MODELS}/{model['id']}/undeploy", headers=ALICE)
        seen.append((await registry.delete(f"{MODELS}/{model['id']}", headers=ALICE)).text)
    assert not [text for text in seen if "/srv" in text or "file:" in text]
