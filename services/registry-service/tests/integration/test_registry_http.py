"""HTTP semantics through a real uvicorn over TCP: a 2xx is sent only after the transaction
committed, a failed commit is an error response; and the LiteLLM configuration routes."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
import yaml
from registry_testing import MODELS, completed, eventually, publish, served, user_headers
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.enums import JobType
from registry_service.config import Settings

pytestmark = pytest.mark.integration

ALICE = user_headers("alice")

# A deferred constraint trigger fails the COMMIT itself, after the route's work succeeded.
FAIL_AT_COMMIT = [
    """CREATE FUNCTION registry.fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'commit refused by the test'; END $$""",
    """CREATE CONSTRAINT TRIGGER fail_at_commit AFTER UPDATE ON registry.models
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION registry.fail_at_commit()""",
]
UNDO = [
    "DROP TRIGGER IF EXISTS fail_at_commit ON registry.models",
    "DROP FUNCTION IF EXISTS registry.fail_at_commit()",
]


@pytest.fixture
def plain_tracebacks() -> Iterator[None]:
    """The 500 below logs its traceback; structlog's default renderer would pretty-print every
    local variable of every frame (tens of seconds here). Plain text, as services log it."""
    structlog.configure(
        processors=[structlog.processors.format_exc_info, structlog.processors.KeyValueRenderer()]
    )
    yield
    structlog.reset_defaults()


async def _register(client: Any, prefix: str, *events: Any) -> list[dict[str, Any]]:
    await publish(prefix, *events)

    async def registered() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = (await client.get(MODELS, headers=ALICE)).json()["data"]
        return data if len(data) == len(events) else None

    found: list[dict[str, Any]] = await eventually(registered)
    by_job = {m["job_id"]: m for m in found}
    return [by_job[str(e.job_id)] for e in events]


async def _status(engine: AsyncEngine, model_id: str) -> str:
    async with engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    sa.text("SELECT status FROM registry.models WHERE id = :id"), {"id": model_id}
                )
            ).scalar_one()
        )


async def test_a_2xx_means_committed_and_a_failed_commit_is_an_error(
    registry_settings: Callable[..., Settings],
    registry_db: AsyncEngine,
    registry_prefix: str,
    plain_tracebacks: None,
) -> None:
    async with served(registry_settings()) as client:
        first, second = await _register(
            client, registry_prefix, completed(), completed(output_model="alice/b")
        )
        r = await client.post(f"{MODELS}/{first['id']}/deploy", headers=ALICE)
        assert r.status_code == 200
        # Another connection sees it the moment the response arrives.
        assert await _status(registry_db, first["id"]) == "deployed"

        async with registry_db.begin() as conn:
            for statement in FAIL_AT_COMMIT:
                await conn.execute(sa.text(statement))
        try:
            r = await client.post(f"{MODELS}/{second['id']}/deploy", headers=ALICE)
            assert r.status_code == 500, r.text
            assert r.json()["error"]["code"] == "internal_error"
            assert await _status(registry_db, second["id"]) == "registered"
        finally:
            async with registry_db.begin() as conn:
                for statement in UNDO:
                    await conn.execute(sa.text(statement))
        r = await client.post(f"{MODELS}/{second['id']}/deploy", headers=ALICE)
        assert r.status_code == 200


async def test_litellm_config_lists_the_deployed_models(
    registry: Any, registry_prefix: str
) -> None:
    emb, clf, lora, idle = await _register(
        registry,
        registry_prefix,
        completed(),
        completed(output_model="alice/clf", job_type=JobType.CLASSIFIER),
        completed(
            output_model="alice/lora",
            job_type=JobType.LLM_LORA,
            base_model="mistralai/Mistral-7B-v0.1",
        ),
        completed(output_model="alice/idle"),
    )
    empty = await registry.get(f"{MODELS}/litellm-config", headers=ALICE)
    assert empty.status_code == 200
    assert empty.json() == {"data": {"model_list": [], "general_settings": None}}
    for model in (emb, clf, lora):
        r = await registry.post(f"{MODELS}/{model['id']}/deploy", headers=ALICE)
        assert r.status_code == 200
    # Bob deploys a model of his own: it is in his configuration, never in Alice's.
    bob = user_headers("bob")
    await publish(registry_prefix, completed(user_id="bob", output_model="bob/x"))

    async def bobs() -> list[dict[str, Any]] | None:
        data: list[dict[str, Any]] = (await registry.get(MODELS, headers=bob)).json()["data"]
        return data or None

    [bob_model] = await eventually(bobs)
    r = await registry.post(f"{MODELS}/{bob_model['id']}/deploy", headers=bob)
    assert r.status_code == 200, r.text
    bobs_config = (await registry.get(f"{MODELS}/litellm-config", headers=bob)).json()["data"]
    assert [e["model_name"] for e in bobs_config["model_list"]] == ["bob/x"]
    assert bobs_config["general_settings"] is None  # Alice's classifier is not his
    # An admin's configuration is theirs alone too.
    admin = user_headers("root", admin=True)
    admins = (await registry.get(f"{MODELS}/litellm-config", headers=admin)).json()["data"]
    assert admins == {"model_list": [], "general_settings": None}

    config = (await registry.get(f"{MODELS}/litellm-config", headers=ALICE)).json()["data"]
    entries = {e["model_name"]: e for e in config["model_list"]}
    assert set(entries) == {"alice/support-embed", "alice/lora"}
    assert bob_model["id"] not in {e["model_info"]["id"] for e in config["model_list"]}
    assert entries["alice/support-embed"]["litellm_params"] == {
        "model": "openai/alice/support-embed",
        "api_base": "http://model-server.test:8005/v1",
        "api_key": "os.environ/FTD_SERVE_API_KEY",
    }
    assert entries["alice/support-embed"]["model_info"]["mode"] == "embedding"
    assert entries["alice/support-embed"]["model_info"]["id"] == emb["id"]
    assert entries["alice/lora"]["litellm_params"] == {
        "model": "hosted_vllm/alice/lora",
        "api_base": "http://vllm.test:8000/v1",
        "api_key": "EMPTY",
    }
    assert entries["alice/lora"]["model_info"]["base_model"] == "mistralai/Mistral-7B-v0.1"
    [route] = config["general_settings"]["pass_through_endpoints"]
    assert route["path"] == "/ftd-serve/v1/classify"
    assert route["target"] == "http://model-server.test:8005/v1/classify"

    as_yaml = await registry.get(
        f"{MODELS}/litellm-config", headers=ALICE, params={"format": "yaml"}
    )
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("application/yaml")
    parsed = yaml.safe_load(as_yaml.text)
    assert parsed["model_list"] == config["model_list"]
    assert parsed["general_settings"] == config["general_settings"]
    bad = await registry.get(f"{MODELS}/litellm-config", headers=ALICE, params={"format": "xml"})
    assert bad.status_code == 422
    assert idle["status"] == "registered"
