"""job-api settings: the only module that reads the environment (entry points pass values on).

Platform-wide values keep the names the brief and the README use (`FTD_*`, `FINETUNE_WORKER_KEY`);
job-api's own use the `JOB_API_` prefix.
"""

from datetime import timedelta
from typing import Literal, Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.routing import BrokerNames
from servicekit.settings import (
    check_deployment,
    refuse_default_database_password,
    role_credentials,
)


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class DatabaseSettings(BaseSettings):
    """What setting up the database needs (`job-api db-init`): no token or worker secrets."""

    model_config = SettingsConfigDict(env_prefix="JOB_API_", extra="ignore", populate_by_name=True)

    environment: Literal["development", "production", "test"] = Field(
        default="development", validation_alias=_alias("FTD_ENV", "JOB_API_ENVIRONMENT")
    )
    database_url: str = "postgresql://job_api:job_api_dev@127.0.0.1:5432/finetune"
    db_password: SecretStr = SecretStr("job_api_dev")
    admin_dsn: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=_alias("FTD_ADMIN_DSN"),
    )
    # `make dev` and `make migrate` set it per checkout (finetune_<hash of the path>), so two
    # clones on one machine never share a database.
    database_name: str = Field(default="finetune", validation_alias=_alias("FTD_DATABASE_NAME"))

    @model_validator(mode="after")
    def _database_passwords(self) -> Self:
        credentials = role_credentials(
            self, {"JOB_API_DATABASE_URL": "database_url", "JOB_API_DB_PASSWORD": "db_password"}
        )
        for name, value in {**credentials, "FTD_ADMIN_DSN": self.admin_dsn}.items():
            refuse_default_database_password(value, name=name, environment=self.environment)
        return self


class Settings(DatabaseSettings):
    db_pool_size: int = 20
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
    worker_key: SecretStr | None = Field(
        default=None, validation_alias=_alias("FINETUNE_WORKER_KEY")
    )
    data_ticket_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("FTD_DATA_TICKET_SECRET")
    )

    enable_offline_models: bool = Field(
        default=False, validation_alias=_alias("FTD_ENABLE_OFFLINE_MODELS")
    )
    # https training_data_urls (else only uploaded `ftd://datasets/<id>`): on in development,
    # off elsewhere unless set.
    allow_external_data_urls: bool | None = Field(
        default=None, validation_alias=_alias("FTD_ALLOW_EXTERNAL_DATA_URLS")
    )
    # Comma-separated hosts (`files.example.com`) or suffixes (`.example.com`) an external data
    # URL may name even where they resolve to an address the SSRF guard refuses.
    data_url_allowed_hosts: str = Field(
        default="", validation_alias=_alias("FTD_DATA_URL_ALLOWED_HOSTS")
    )
    # Largest external training file a worker downloads.
    max_external_data_bytes: int = Field(
        default=10 << 30, ge=1, validation_alias=_alias("FTD_MAX_EXTERNAL_DATA_BYTES")
    )

    # Worker identity: the shared FINETUNE_WORKER_KEY (the brief's HTTP worker API) is accepted
    # in development, elsewhere only when this says so. Enrolled workers need no shared key.
    allow_shared_worker_key: bool | None = Field(
        default=None, validation_alias=_alias("FTD_ALLOW_SHARED_WORKER_KEY")
    )
    # The broker's management API (http://user:password@host:15672): job-api makes a broker user
    # for each enrolled worker with its pool's permissions, and deletes it on revocation.
    # Unset: enrolled workers are told `worker_amqp_url` as it is (development).
    broker_management_url: SecretStr | None = Field(
        default=None, validation_alias=_alias("FTD_BROKER_MANAGEMENT_URL")
    )
    # The broker URL workers dial (amqps:// for remote ones); the credentials are the worker's own.
    worker_amqp_url: str | None = Field(
        default=None, validation_alias=_alias("FTD_WORKER_AMQP_URL_PUBLIC")
    )
    # How the "Add a worker" Colab cell installs the worker (a shell command).
    worker_install: str = Field(
        default=(
            "git clone -q --depth 1 https://github.com/your-org/finetune-dispatcher.git "
            "/content/ftd && pip install -q /content/ftd/libs/contracts /content/ftd/libs/netguard "
            "/content/ftd/libs/workerlink /content/ftd/services/gpu-worker && pip install -q -r "
            "/content/ftd/services/gpu-worker/requirements-train.txt"
        ),
        validation_alias=_alias("FTD_WORKER_INSTALL"),
    )
    # A worker counts as online while its last heartbeat is younger than this.
    worker_online_seconds: float = Field(default=30, gt=0)
    # A retryable failure puts the job back after this long, doubled per attempt (max 10 min).
    retry_backoff_seconds: float = Field(default=10, ge=0)

    # Output names: the Hugging Face endpoint that tells whose a linked token is, and the secret
    # the Fernet key that encrypts linked tokens at rest is derived from (HKDF); several,
    # comma-separated, rotate it (the first encrypts). Development derives one from the JWT secret.
    hf_endpoint: str = Field(
        default="https://huggingface.co", validation_alias=_alias("FTD_HF_ENDPOINT")
    )
    secrets_key: SecretStr | None = Field(default=None, validation_alias=_alias("FTD_SECRETS_KEY"))
    public_base_url: str = Field(
        default="http://localhost:8000", validation_alias=_alias("FTD_PUBLIC_BASE_URL")
    )

    lease_seconds: float = Field(default=90, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    redispatch_seconds: float = Field(default=1800, gt=0)
    watchdog_interval: float = Field(default=2.0, gt=0)
    presence_interval: float = Field(default=5.0, gt=0)
    inbox_retention_hours: float = Field(default=72, gt=0)
    # History (job_events) of jobs that ended longer ago than this is deleted by the watchdog, in
    # batches; a job's own row (status, metrics) stays.
    events_retention_days: float = Field(default=30, gt=0)
    # Idempotency-Key records of POST /jobs are kept this long: a retry after that creates a job.
    idempotency_retention_hours: float = Field(default=24, gt=0)
    retention_batch: int = Field(default=1000, ge=1)
    retention_interval: float = Field(default=600, gt=0)

    # Request bodies larger than this are refused with 413 while being read (before any auth).
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    # Open SSE streams: beyond these a new stream is refused with 429 `too_many_streams`.
    max_streams_per_user: int = Field(default=8, ge=1)
    max_streams: int = Field(default=2000, ge=1)

    # CPython's cyclic collector runs every this many allocations (servicekit.gctune); its
    # default, 700, collects every few messages under load. 0 keeps CPython's thresholds.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)

    run_relay: bool = True
    run_consumers: bool = True
    run_watchdog: bool = True
    access_log: bool = Field(
        default=True, validation_alias=_alias("FTD_ACCESS_LOG", "JOB_API_ACCESS_LOG")
    )
    json_logs: bool = Field(
        default=False, validation_alias=_alias("FTD_JSON_LOGS", "JOB_API_JSON_LOGS")
    )
    log_level: str = Field(
        default="INFO", validation_alias=_alias("FTD_LOG_LEVEL", "JOB_API_LOG_LEVEL")
    )

    @model_validator(mode="after")
    def _secrets_present(self) -> Self:
        if self.jwt_algorithm == "HS256" and self.jwt_secret is None:
            raise ValueError(
                "FTD_JWT_SECRET must be set for HS256 tokens (`make dev` generates one)."
            )
        if self.jwt_algorithm == "RS256" and not self.jwks_url:
            raise ValueError("FTD_JWKS_URL must be set for RS256 tokens.")
        if self.worker_key is None:
            raise ValueError("FINETUNE_WORKER_KEY must be set (`make dev` generates one).")
        check_deployment(
            environment=self.environment,
            secrets={
                "FTD_JWT_SECRET": self.jwt_secret,
                "FINETUNE_WORKER_KEY": self.worker_key,
                "FTD_DATA_TICKET_SECRET": self.data_ticket_secret,
                "FTD_SECRETS_KEY": self.secrets_key,
            },
            brokers={
                "FTD_AMQP_URL": self.amqp_url,
                "FTD_BROKER_MANAGEMENT_URL": self.broker_management_url,
            },
        )
        if self.environment != "development" and self.data_ticket_secret is None:
            raise ValueError("FTD_DATA_TICKET_SECRET must be set outside development.")
        return self

    @model_validator(mode="after")
    def _secrets_key_present(self) -> Self:
        if self.environment != "development" and self.secrets_key is None:
            raise ValueError(
                "FTD_SECRETS_KEY must be set outside development (it encrypts linked Hugging Face "
                "tokens at rest)."
            )
        return self

    @property
    def external_data_urls(self) -> bool:
        """Whether https training data URLs are accepted (default: in development only)."""
        if self.allow_external_data_urls is not None:
            return self.allow_external_data_urls
        return self.environment == "development"

    @property
    def shared_worker_key(self) -> bool:
        """Whether the brief's shared FINETUNE_WORKER_KEY opens the worker endpoints."""
        if self.allow_shared_worker_key is not None:
            return self.allow_shared_worker_key
        return self.environment == "development"

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_seconds)

    @property
    def broker_names(self) -> BrokerNames:
        return BrokerNames(prefix=self.broker_prefix)

    def ticket_secret(self) -> str:
        """Falls back to the JWT secret in development so one generated secret is enough."""
        if self.data_ticket_secret is not None:
            return self.data_ticket_secret.get_secret_value()
        assert self.jwt_secret is not None or self.environment != "production"
        return self.jwt_secret.get_secret_value() if self.jwt_secret else ""
