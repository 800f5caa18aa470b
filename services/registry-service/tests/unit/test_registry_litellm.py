"""The LiteLLM configuration is one LiteLLM itself accepts (its Router validates every entry, its
proxy types validate the pass-through route); the YAML and JSON forms carry the same content."""

import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from contracts.enums import JobType, ModelStore
from registry_service.domain.model import Model, ModelStatus
from registry_service.service_layer.litellm import Endpoints, litellm_config

# LiteLLM fetches a price list from GitHub at import unless told to use its bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")
# Importing LiteLLM alone takes tens of seconds on a busy machine.
pytestmark = pytest.mark.timeout(600)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
ENDPOINTS = Endpoints(
    lora_base_url="http://vllm:8000/v1",
    serve_base_url="http://model-server:8005/v1",
    serve_api_key_env="FTD_SERVE_API_KEY",
)


def deployed(name: str, job_type: JobType, version: int = 1) -> Model:
    return Model(
        id=uuid.uuid4(),
        user_id="alice",
        name=name,
        version=version,
        job_id=uuid.uuid4(),
        attempt=1,
        job_type=job_type,
        base_model="base/model",
        repo_id=name,
        revision="r1",
        store=ModelStore.LOCAL,
        uri=f"file:///models/{name}/r1",
        created_at=NOW,
        registered_at=NOW,
        updated_at=NOW,
        status=ModelStatus.DEPLOYED,
    )


MODELS = [
    deployed("alice/lora", JobType.LLM_LORA),
    deployed("alice/emb", JobType.EMBEDDING, 2),
    deployed("alice/clf", JobType.CLASSIFIER),
]


def test_litellm_router_accepts_the_model_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTD_SERVE_API_KEY", "serve-key-for-the-test")
    config = yaml.safe_load(yaml.safe_dump(litellm_config(MODELS, ENDPOINTS)))
    router = litellm.Router(model_list=config["model_list"])
    registry = router.registry()
    assert sorted(registry.names()) == ["alice/emb", "alice/lora"]
    emb = registry.deployment(str(MODELS[1].id))
    assert emb is not None
    assert emb.litellm_params.api_base == "http://model-server:8005/v1"
    assert emb.model_info.base_model == "base/model"
    lora = registry.deployment(str(MODELS[0].id))
    assert lora is not None
    assert lora.litellm_params.model == "hosted_vllm/alice/lora"
    provider = litellm.get_llm_provider(lora.litellm_params.model)[1]
    assert provider == "hosted_vllm"
    assert litellm.get_llm_provider("openai/alice/emb")[1] == "openai"


def test_the_classifier_route_is_a_valid_pass_through_endpoint() -> None:
    types: Any = pytest.importorskip("litellm.proxy._types")
    config = litellm_config(MODELS, ENDPOINTS)
    [route] = config["general_settings"]["pass_through_endpoints"]
    endpoint = types.PassThroughGenericEndpoint(**route)
    assert endpoint.path == "/ftd-serve/v1/classify"
    assert endpoint.target == "http://model-server:8005/v1/classify"
    assert endpoint.headers == {"Authorization": "Bearer os.environ/FTD_SERVE_API_KEY"}


def test_no_classifier_no_general_settings_and_no_key_without_an_env_name() -> None:
    config = litellm_config(MODELS[:2], Endpoints("http://v/v1", "http://s/v1"))
    assert set(config) == {"model_list"}
    assert {e["litellm_params"]["api_key"] for e in config["model_list"]} == {"EMPTY"}


def test_entries_are_ordered_by_name_and_carry_where_the_model_is() -> None:
    config = litellm_config(MODELS, ENDPOINTS)
    assert [e["model_name"] for e in config["model_list"]] == ["alice/emb", "alice/lora"]
    info = config["model_list"][0]["model_info"]
    # The model's place in a worker's store, without the worker's path.
    assert info["ftd_uri"] == "local://alice/emb@r1"
    assert info["ftd_version"] == 2
    assert info["mode"] == "embedding"
