"""model-server settings: the only module that reads the environment (entry points pass values
on). The platform-wide ones come from servicekit's PlatformSettings (`FTD_*`); the service's own
use the `MODEL_SERVER_` prefix, except the few the serving tools already share (`FTD_SERVE_*`,
`FTD_MODEL_STORE_DIR`)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.config import PlatformSettings, PostgresUrl, shared

LoraBackend = Literal["peft", "vllm"]


class Settings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="MODEL_SERVER_")

    database_url: PostgresUrl = "postgresql://model_server:model_server_dev@127.0.0.1:5432/finetune"
    db_password: SecretStr = SecretStr("model_server_dev")

    model_store_dir: Path | None = Field(
        default=None,
        validation_alias=shared("FTD_MODEL_STORE_DIR"),
        description="The local model store (`<store>/<owner key>/<owner>/<name>/<revision>/`).",
    )
    hub_downloads: bool = Field(
        default=True,
        description="Download a deployed model from the Hub when it is not in the local store.",
    )
    hf_token: SecretStr | None = None
    device: str | None = Field(default=None, description="torch device; default cuda if any.")
    lora_backend: LoraBackend = Field(
        default="peft", validation_alias=shared("FTD_SERVE_LORA_BACKEND")
    )
    vllm_url: str = Field(
        default="http://127.0.0.1:8010/v1",
        validation_alias=shared("FTD_SERVE_VLLM_URL"),
        description="A vLLM OpenAI server started with --enable-lora (lora_backend=vllm).",
    )
    vllm_api_key: SecretStr | None = Field(
        default=None, validation_alias=shared("FTD_SERVE_VLLM_API_KEY")
    )
    # This process's name on the broker (its own queue); default: the host name and a random tail.
    replica_id: str | None = None
    # The deployed set is read again this often even without an event (another replica's writes).
    reconcile_seconds: float = Field(default=30.0, gt=0)
    max_new_tokens: int = Field(default=512, ge=1)
    # torch's intra-op threads; default: every CPU, since the server makes idle OpenMP threads
    # sleep (OMP_WAIT_POLICY=PASSIVE unless set); with another wait policy, one fewer than the
    # CPUs: spinning torch threads would compete with the event loop, tokenizers and HTTP work
    # (on two cores a one-text forward cost 5x its CPU).
    torch_threads: int | None = Field(default=None, ge=1)
    # Concurrent embedding/classification requests share one forward of up to this many texts.
    max_batch_texts: int = Field(default=64, ge=1)
    # An API key's row is read again after this long (a revocation made through another replica
    # takes effect within it; one made through this replica at once). 0: read on every request.
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
