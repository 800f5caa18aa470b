"""data-service settings: the only module that reads the environment (entry points pass values on).

Platform-wide values keep their shared names (`FTD_*`); data-service's own use `DATA_SERVICE_`.
"""

from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.routing import BrokerNames
from data_service.service_layer.validation.limits import BLOCK_BYTES, Limits
from servicekit.settings import check_deployment, role_credentials


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DATA_SERVICE_", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "production", "test"] = Field(
        default="development", validation_alias=_alias("FTD_ENV", "DATA_SERVICE_ENVIRONMENT")
    )
    database_url: str = "postgresql://data_service:data_service_dev@127.0.0.1:5432/finetune"
    db_password: SecretStr = SecretStr("data_service_dev")
    db_pool_size: int = 10
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
    data_ticket_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("FTD_DATA_TICKET_SECRET")
    )

    # Storage: a local folder by default, S3/MinIO when storage_backend is "s3".
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path = Path(".dev/datasets")
    storage_direct_io: bool = Field(
        default=True,
        description="Local backend: write uploads with O_DIRECT (no page-cache copy; falls back "
        "to buffered writes where the filesystem refuses it).",
    )
    s3_endpoint: str = "127.0.0.1:9000"
    s3_public_endpoint: str | None = Field(
        default=None, description="Host workers reach for presigned URLs (default: s3_endpoint)."
    )
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_bucket: str = "ftd-datasets"
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    presigned_url_seconds: int = Field(default=300, gt=0, le=7 * 24 * 3600)

    max_upload_bytes: int = Field(default=2 << 30, gt=0)
    max_errors: int = Field(default=100, ge=1, le=1000)
    max_line_bytes: int = Field(default=BLOCK_BYTES, ge=BLOCK_BYTES)
    max_field_chars: int = Field(default=100_000, ge=1)
    min_rows: int = Field(default=10, ge=1)
    preview_rows: int = Field(default=20, ge=1, le=200)
    retention: Literal["keep", "delete_after_completion"] = "keep"

    # Generation-0 threshold of CPython's cyclic collector (servicekit.gctune); 0: its default.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)
    run_relay: bool = True
    run_consumers: bool = True
    inbox_retention_hours: float = Field(default=72, gt=0)
    access_log: bool = Field(
        default=True, validation_alias=_alias("FTD_ACCESS_LOG", "DATA_SERVICE_ACCESS_LOG")
    )
    json_logs: bool = Field(
        default=False, validation_alias=_alias("FTD_JSON_LOGS", "DATA_SERVICE_JSON_LOGS")
    )
    log_level: str = Field(
        default="INFO", validation_alias=_alias("FTD_LOG_LEVEL", "DATA_SERVICE_LOG_LEVEL")
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
            secrets={
                "FTD_JWT_SECRET": self.jwt_secret,
                "FTD_DATA_TICKET_SECRET": self.data_ticket_secret,
            },
            databases={
                **role_credentials(
                    self,
                    {
                        "DATA_SERVICE_DATABASE_URL": "database_url",
                        "DATA_SERVICE_DB_PASSWORD": "db_password",
                    },
                ),
                "FTD_ADMIN_DSN": self.admin_dsn,
            },
            brokers={"FTD_AMQP_URL": self.amqp_url},
        )
        if self.environment != "development" and self.data_ticket_secret is None:
            raise ValueError("FTD_DATA_TICKET_SECRET must be set outside development.")
        if self.storage_backend == "s3" and (
            self.s3_access_key is None or self.s3_secret_key is None
        ):
            raise ValueError(
                "DATA_SERVICE_S3_ACCESS_KEY and DATA_SERVICE_S3_SECRET_KEY must be set for S3 storage."
            )
        return self

    @property
    def broker_names(self) -> BrokerNames:
        return BrokerNames(prefix=self.broker_prefix)

    @property
    def limits(self) -> Limits:
        return Limits(
            max_errors=self.max_errors,
            max_line_bytes=self.max_line_bytes,
            max_field_chars=self.max_field_chars,
            min_rows=self.min_rows,
        )

    def ticket_secret(self) -> str:
        """The same fallback as job-api: the JWT secret in development, so one secret is enough."""
        if self.data_ticket_secret is not None:
            return self.data_ticket_secret.get_secret_value()
        return self.jwt_secret.get_secret_value() if self.jwt_secret else ""
