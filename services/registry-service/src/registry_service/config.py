"""registry-service settings: the only module that reads the environment (entry points pass values
on). Platform-wide values keep their shared names (`FTD_*`); the service's own use the
`REGISTRY_SERVICE_` prefix."""

from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.routing import BrokerNames
from servicekit.settings import check_deployment, role_credentials


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REGISTRY_SERVICE_", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "production", "test"] = Field(
        default="development", validation_alias=_alias("FTD_ENV", "REGISTRY_SERVICE_ENVIRONMENT")
    )
    database_url: str = "postgresql://registry_service:registry_service_dev@127.0.0.1:5432/finetune"
    db_password: SecretStr = SecretStr("registry_service_dev")
    db_pool_size: int = Field(default=10, ge=4)
    admin_dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=_alias("FTD_ADMIN_DSN"),
    )
    database_name: str = Field(default="finetune", validation_alias=_alias("FTD_DATABASE_NAME"))
    amqp_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        validation_alias=_alias("FTD_AMQP_URL"),
    )
    broker_prefix: str = Field(default="", validation_alias=_alias("FTD_BROKER_PREFIX"))

    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", validation_alias=_alias("FTD_JWT_ALGORITHM")
    )
    jwt_secret: SecretStr | None = Field(default=None, validation_alias=_alias("FTD_JWT_SECRET"))
    jwks_url: str | None = Field(default=None, validation_alias=_alias("FTD_JWKS_URL"))
    jwt_audience: str | None = Field(default=None, validation_alias=_alias("FTD_JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(default=None, validation_alias=_alias("FTD_JWT_ISSUER"))

    # Where deployed models are served (written into the LiteLLM configuration).
    lora_base_url: str = Field(
        default="http://localhost:8010/v1",
        description="OpenAI-compatible server with LoRA adapters (vLLM --enable-lora).",
    )
    lora_api_key_env: str | None = Field(
        default=None, description="Env var LiteLLM reads the LoRA server's key from."
    )
    serve_base_url: str = Field(
        default="http://localhost:8005/v1", description="ftd-serve (embeddings, classifiers)."
    )
    serve_api_key_env: str | None = Field(
        default="FTD_SERVE_API_KEY", description="Env var LiteLLM reads ftd-serve's key from."
    )
    # Only used to delete a Hub repository a user explicitly asks to delete.
    hf_token: SecretStr | None = None
    hf_endpoint: str | None = None

    inbox_retention_hours: float = Field(default=72, gt=0)
    # Generation-0 threshold of CPython's cyclic collector (servicekit.gctune); 0: its default.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)
    run_relay: bool = True
    run_consumers: bool = True
    access_log: bool = Field(
        default=True, validation_alias=_alias("FTD_ACCESS_LOG", "REGISTRY_SERVICE_ACCESS_LOG")
    )
    json_logs: bool = Field(
        default=False, validation_alias=_alias("FTD_JSON_LOGS", "REGISTRY_SERVICE_JSON_LOGS")
    )
    log_level: str = Field(
        default="INFO", validation_alias=_alias("FTD_LOG_LEVEL", "REGISTRY_SERVICE_LOG_LEVEL")
    )

    @model_validator(mode="after")
    def _secrets_present(self) -> Self:
        if self.jwt_algorithm == "HS256" and self.jwt_secret is None:
            raise ValueError(
                "FTD_JWT_SECRET must be set for HS256 tokens (`make dev` generates one)."
            )
        if self.jwt_algorithm == "RS256" and not self.jwks_url:
            raise ValueError("FTD_JWKS_URL must be set for RS256 tokens.")
        check_deployment(
            environment=self.environment,
            secrets={"FTD_JWT_SECRET": self.jwt_secret},
            databases={
                **role_credentials(
                    self,
                    {
                        "REGISTRY_SERVICE_DATABASE_URL": "database_url",
                        "REGISTRY_SERVICE_DB_PASSWORD": "db_password",
                    },
                ),
                "FTD_ADMIN_DSN": self.admin_dsn,
            },
            brokers={"FTD_AMQP_URL": self.amqp_url},
        )
        return self

    @property
    def broker_names(self) -> BrokerNames:
        return BrokerNames(prefix=self.broker_prefix)
