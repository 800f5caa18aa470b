"""registry-service settings: the only module that reads the environment (entry points pass values
on). The platform-wide ones come from servicekit's PlatformSettings (`FTD_*`); the service's own
use the `REGISTRY_SERVICE_` prefix."""

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from servicekit.config import PlatformSettings, PostgresUrl


class Settings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_SERVICE_")

    database_url: PostgresUrl = (
        "postgresql://registry_service:registry_service_dev@127.0.0.1:5432/finetune"
    )
    db_password: SecretStr = SecretStr("registry_service_dev")

    # Where deployed models are served (written into the LiteLLM configuration).
    lora_base_url: str = Field(
        default="http://localhost:8010/v1",
        description="OpenAI-compatible server with LoRA adapters (vLLM --enable-lora).",
    )
    lora_api_key_env: str | None = Field(
        default=None, description="Env var LiteLLM reads the LoRA server's key from."
    )
    serve_base_url: str = Field(
        default="http://localhost:8005/v1",
        description="model-server's OpenAI-style API (embeddings, classifiers).",
    )
    serve_api_key_env: str | None = Field(
        default="FTD_SERVE_API_KEY",
        description="Env var LiteLLM reads its model-server key from (an API key from /api/keys).",
    )
    # Only used to delete a Hub repository a user explicitly asks to delete.
    hf_token: SecretStr | None = None
    hf_endpoint: str | None = None
