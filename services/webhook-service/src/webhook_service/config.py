"""webhook-service settings: the only module that reads the environment (entry points pass values
on). The platform-wide ones come from servicekit's PlatformSettings (`FTD_*`); the service's own
use the `WEBHOOK_SERVICE_` prefix."""

from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from servicekit.config import PlatformSettings, PostgresUrl
from servicekit.settings import Secret
from webhook_service.domain.deliveries import DEFAULT_RETRY_DELAYS


class Settings(PlatformSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_SERVICE_")

    database_url: PostgresUrl = (
        "postgresql://webhook_service:webhook_service_dev@127.0.0.1:5432/finetune"
    )
    db_password: SecretStr = SecretStr("webhook_service_dev")

    secrets_key: SecretStr | None = Field(
        default=None,
        description=(
            "Encrypts the webhooks' signing secrets at rest (any strong secret; comma-separated "
            "to rotate: the first encrypts, all decrypt). Required outside development."
        ),
    )
    allow_http_loopback: bool = Field(
        default=False,
        description=(
            "Development and tests: webhook URLs may name this machine's loopback, over http too. "
            "Refused in production."
        ),
    )
    allowed_hosts: str = Field(
        default="",
        description=(
            "Comma-separated hosts (`hooks.example.com`) or suffixes (`.example.com`) a webhook "
            "may name even where they resolve to an address the SSRF guard refuses."
        ),
    )
    max_webhooks_per_user: int = Field(default=50, ge=1)
    delivery_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # Seconds between attempts: 8 attempts by default (JSON list in the environment).
    retry_delays: tuple[float, ...] = Field(default=DEFAULT_RETRY_DELAYS, min_length=0)
    sender_batch: int = Field(default=50, ge=1)
    sender_concurrency: int = Field(default=10, ge=1)
    sender_poll_seconds: float = Field(default=1.0, gt=0)
    # Every replica may send (due rows are taken with SKIP LOCKED); off to leave it to others.
    run_sender: bool = True

    def deployment_secrets(self) -> dict[str, Secret]:
        return {**super().deployment_secrets(), "WEBHOOK_SERVICE_SECRETS_KEY": self.secrets_key}

    @property
    def allowed_host_list(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.allowed_hosts.split(",") if h.strip())

    @model_validator(mode="after")
    def _webhook_rules(self) -> Self:
        if self.environment != "development" and self.secrets_key is None:
            raise ValueError(
                "WEBHOOK_SERVICE_SECRETS_KEY must be set outside development (it encrypts the "
                "webhooks' signing secrets at rest)."
            )
        if self.environment == "production" and self.allow_http_loopback:
            raise ValueError(
                "WEBHOOK_SERVICE_ALLOW_HTTP_LOOPBACK is for development and tests; it may not be "
                "on in production."
            )
        if any(d <= 0 for d in self.retry_delays):
            raise ValueError("WEBHOOK_SERVICE_RETRY_DELAYS must all be positive (seconds).")
        return self
