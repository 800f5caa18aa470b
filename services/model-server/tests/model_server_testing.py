"""Helpers shared by model-server tests (importable: pytest's `pythonpath` lists this folder):
models built locally into a temporary model store, and the registry's events published as its
relay does."""

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from contracts.enums import JobType
from contracts.events import Envelope, ModelDeleted, ModelDeployed
from contracts.routing import BrokerNames
from contracts.store import owner_key
from messaging.broker import Broker
from servicekit.testing import AMQP_URL

TABLES = ("model_server.deployments", "model_server.api_keys", "model_server.inbox")


def store_path(store: Path, user: str, name: str, revision: str) -> Path:
    return store / owner_key(user) / name / revision


def put(store: Path, user: str, name: str, revision: str, source: Path) -> None:
    shutil.copytree(source, store_path(store, user, name, revision))


def build_classifier(embedding: Path, out: Path) -> Path:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(embedding), num_labels=2)
    model.config.id2label = {0: "negative", 1: "positive"}
    model.config.label2id = {"negative": 0, "positive": 1}
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(embedding)).save_pretrained(out)
    return out


def build_adapter(base: Path, out: Path, seed: int, *, names_base: str | None = None) -> Path:
    """A LoRA adapter of `base`; `names_base` replaces the base its config names (the worker
    writes the catalogue id, e.g. `ftd-local/tiny-llama`, not its own folder)."""
    import json

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    peft_model.save_pretrained(out)
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(out)
    if names_base is not None:
        config_path = out / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = names_base
        config_path.write_text(json.dumps(config))
    return out


def deployed(
    model_id: uuid.UUID,
    *,
    user: str,
    name: str,
    revision: str,
    job_type: JobType,
    deployed: bool = True,
) -> ModelDeployed:
    return ModelDeployed(
        model_id=model_id,
        user_id=user,
        repo_id=name,
        revision=revision,
        job_type=job_type,
        deployed=deployed,
        deployed_at=datetime.now(UTC),
    )


async def publish(prefix: str, *events: ModelDeployed | ModelDeleted) -> None:
    """Publish on the events exchange, as the registry's relay does."""
    broker = Broker(AMQP_URL, BrokerNames(prefix), client_name="model-server-test-publisher")
    await broker.connect()
    try:
        for event in events:
            await broker.publish(
                Envelope.wrap(event, source="registry-service"), event.routing_key()
            )
    finally:
        await broker.close()
