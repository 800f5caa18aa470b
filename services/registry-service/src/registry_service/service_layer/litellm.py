"""A LiteLLM proxy configuration for a user's deployed models.

- LLM LoRA adapters are served by an OpenAI-compatible server that loads LoRA adapters (vLLM with
  `--enable-lora`), reached at `lora_base_url`; the adapter is addressed by the model's name, so
  vLLM must load it under that name (`--lora-modules <name>=<path>`; `model_info.ftd_uri` says
  where the adapter is).
- Embedding models are served by model-server (`/v1/embeddings`, OpenAI-compatible) at
  `serve_base_url`; LiteLLM calls them through its `openai/` provider.
- Classifiers are served by model-server too, at `/v1/classify`. LiteLLM has no classification
  route, so they are not `model_list` entries: when any is deployed, a pass-through endpoint
  (`/ftd-serve/v1/classify`, a name kept for existing LiteLLM set-ups) forwards those requests to
  model-server unchanged (the request names the model; `GET /api/models?job_type=classifier&status=deployed` lists them).

`model_name` is the output name (`owner/name`): one version per name is deployed at a time.
Keys are never written into the file: `api_key` names an environment variable
(`os.environ/NAME`, LiteLLM's own syntax) or is the literal "EMPTY" a keyless server ignores.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contracts.enums import JobType
from registry_service.domain.model import Model

# What an OpenAI-compatible server without an API key accepts (the OpenAI client needs a value).
NO_KEY = "EMPTY"
# The LiteLLM route that forwards classification requests to model-server unchanged.
CLASSIFY_PATH = "/ftd-serve/v1/classify"


@dataclass(frozen=True)
class Endpoints:
    lora_base_url: str
    serve_base_url: str
    lora_api_key_env: str | None = None
    serve_api_key_env: str | None = None


def _key(env: str | None) -> str:
    return f"os.environ/{env}" if env else NO_KEY


def _model_info(model: Model, mode: str) -> dict[str, Any]:
    return {
        "id": str(model.id),
        "mode": mode,
        "base_model": model.base_model,
        "ftd_version": model.version,
        "ftd_job_type": str(model.job_type),
        "ftd_repo_id": model.repo_id,
        "ftd_revision": model.revision,
        # Where the files are, never a path on a server (a row written before URIs were
        # recorded that way is shown in the same form).
        "ftd_uri": model.shown_uri,
    }


def _entry(model: Model, endpoints: Endpoints) -> dict[str, Any] | None:
    if model.job_type is JobType.LLM_LORA:
        return {
            "model_name": model.name,
            "litellm_params": {
                "model": f"hosted_vllm/{model.name}",
                "api_base": endpoints.lora_base_url,
                "api_key": _key(endpoints.lora_api_key_env),
            },
            "model_info": _model_info(model, "chat"),
        }
    if model.job_type is JobType.EMBEDDING:
        return {
            "model_name": model.name,
            "litellm_params": {
                "model": f"openai/{model.name}",
                "api_base": endpoints.serve_base_url,
                "api_key": _key(endpoints.serve_api_key_env),
            },
            "model_info": _model_info(model, "embedding"),
        }
    return None


def litellm_config(models: Sequence[Model], endpoints: Endpoints) -> dict[str, Any]:
    """The configuration as a plain dict (YAML or JSON by the caller)."""
    ordered = sorted(models, key=lambda m: (m.name, m.version))
    model_list = [e for m in ordered if (e := _entry(m, endpoints)) is not None]
    config: dict[str, Any] = {"model_list": model_list}
    if any(m.job_type is JobType.CLASSIFIER for m in ordered):
        headers = {}
        if endpoints.serve_api_key_env:
            headers["Authorization"] = f"Bearer os.environ/{endpoints.serve_api_key_env}"
        config["general_settings"] = {
            "pass_through_endpoints": [
                {
                    "path": CLASSIFY_PATH,
                    "target": f"{endpoints.serve_base_url.rstrip('/')}/classify",
                    "headers": headers,
                }
            ]
        }
    return config
