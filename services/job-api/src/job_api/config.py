"""job-api settings: the only module that reads the environment (entry points pass values on).

The platform-wide ones come from servicekit's PlatformSettings (`FTD_*`; the data ticket secret
from its DataTicketSettings) and keep the names the brief and the README use (`FTD_*`,
`FINETUNE_WORKER_KEY`); job-api's own use the `JOB_API_` prefix.
"""

from datetime import timedelta
from typing import Annotated, Self

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from messaging.broker import broker_urls
from servicekit import config as platform
from servicekit.config import DataTicketSettings, PostgresUrl, shared
from servicekit.settings import Secret

DEV_DATABASE_URL = "postgresql://job_api:job_api_dev@127.0.0.1:5432/finetune"
DEV_DB_PASSWORD = "job_api_dev"  # noqa: S105 - development only: refused elsewhere


def _amqp_urls(value: str) -> str:
    broker_urls(value)  # one AMQP URL or several, comma-separated; raises a ValueError
    return value


class DatabaseSettings(platform.DatabaseSettings):
    """What setting up the database needs (`job-api db-init`, `migrate`): no token or worker
    secrets."""

    model_config = SettingsConfigDict(env_prefix="JOB_API_")

    database_url: PostgresUrl = DEV_DATABASE_URL
    db_password: SecretStr = SecretStr(DEV_DB_PASSWORD)


class Settings(DataTicketSettings, DatabaseSettings):
    # Declared again: pydantic takes an inherited field from the first base that has it (here
    # servicekit's, without a default).
    database_url: PostgresUrl = DEV_DATABASE_URL
    db_password: SecretStr = SecretStr(DEV_DB_PASSWORD)
    db_pool_size: int = Field(default=20, ge=1)
    worker_key: SecretStr | None = Field(
        default=None, validation_alias=shared("FINETUNE_WORKER_KEY")
    )

    enable_offline_models: bool = Field(
        default=False, validation_alias=shared("FTD_ENABLE_OFFLINE_MODELS")
    )
    # https training_data_urls (else only uploaded `ftd://datasets/<id>`): on in development,
    # off elsewhere unless set.
    allow_external_data_urls: bool | None = Field(
        default=None, validation_alias=shared("FTD_ALLOW_EXTERNAL_DATA_URLS")
    )
    # Comma-separated hosts (`files.example.com`) or suffixes (`.example.com`) an external data
    # URL may name even where they resolve to an address the SSRF guard refuses.
    data_url_allowed_hosts: str = Field(
        default="", validation_alias=shared("FTD_DATA_URL_ALLOWED_HOSTS")
    )
    # Largest external training file a worker downloads.
    max_external_data_bytes: int = Field(
        default=10 << 30, ge=1, validation_alias=shared("FTD_MAX_EXTERNAL_DATA_BYTES")
    )

    # Worker identity: the shared FINETUNE_WORKER_KEY (the brief's HTTP worker API) is accepted
    # in development, elsewhere only when this says so. Enrolled workers need no shared key.
    allow_shared_worker_key: bool | None = Field(
        default=None, validation_alias=shared("FTD_ALLOW_SHARED_WORKER_KEY")
    )
    # The broker's management API (http://user:password@host:15672): job-api makes a broker user
    # for each enrolled worker with its pool's permissions, and deletes it on revocation.
    # Unset: enrolled workers are told `worker_amqp_url` as it is (development).
    broker_management_url: SecretStr | None = Field(
        default=None, validation_alias=shared("FTD_BROKER_MANAGEMENT_URL")
    )
    # The broker URL workers dial (amqps:// for remote ones); the credentials are the worker's own.
    worker_amqp_url: Annotated[str, AfterValidator(_amqp_urls)] | None = Field(
        default=None, validation_alias=shared("FTD_WORKER_AMQP_URL_PUBLIC")
    )
    # How the "Add a worker" Colab cell installs the worker (a shell command).
    worker_install: str = Field(
        default=(
            "git clone -q --depth 1 https://github.com/your-org/finetune-dispatcher.git "
            "/content/ftd && pip install -q /content/ftd/libs/contracts /content/ftd/libs/netguard "
            "/content/ftd/libs/workerlink /content/ftd/services/gpu-worker && pip install -q -r "
            "/content/ftd/services/gpu-worker/requirements-train.txt"
        ),
        validation_alias=shared("FTD_WORKER_INSTALL"),
    )
    # A worker counts as online while its last heartbeat is younger than this.
    worker_online_seconds: float = Field(default=30, gt=0)
    # A retryable failure puts the job back after this long, doubled per attempt (max 10 min).
    retry_backoff_seconds: float = Field(default=10, ge=0)

    # Output names: the Hugging Face endpoint that tells whose a linked token is, and the secret
    # the Fernet key that encrypts linked tokens at rest is derived from (HKDF); several,
    # comma-separated, rotate it (the first encrypts). Development derives one from the JWT secret.
    hf_endpoint: str = Field(
        default="https://huggingface.co", validation_alias=shared("FTD_HF_ENDPOINT")
    )
    secrets_key: SecretStr | None = Field(default=None, validation_alias=shared("FTD_SECRETS_KEY"))
    public_base_url: str = Field(
        default="http://localhost:8000", validation_alias=shared("FTD_PUBLIC_BASE_URL")
    )

    lease_seconds: float = Field(default=90, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=20)
    redispatch_seconds: float = Field(default=1800, gt=0)
    watchdog_interval: float = Field(default=2.0, gt=0)
    presence_interval: float = Field(default=5.0, gt=0)
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

    run_watchdog: bool = True

    def deployment_secrets(self) -> dict[str, Secret]:
        return {
            **super().deployment_secrets(),
            "FINETUNE_WORKER_KEY": self.worker_key,
            "FTD_SECRETS_KEY": self.secrets_key,
        }

    def deployment_brokers(self) -> dict[str, Secret]:
        return {
            **super().deployment_brokers(),
            "FTD_BROKER_MANAGEMENT_URL": self.broker_management_url,
        }

    @model_validator(mode="after")
    def _job_api_secrets_present(self) -> Self:
        if self.worker_key is None:
            raise ValueError("FINETUNE_WORKER_KEY must be set (`make dev` generates one).")
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
