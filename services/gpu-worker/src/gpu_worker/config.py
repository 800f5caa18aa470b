"""The worker's settings: environment variables (or the CLI, which overrides them)."""

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.enums import GPUProvider, JobType
from workerlink.failover import broker_urls


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def credentials_file() -> Path:
    """Where `ftd-worker login` keeps the token (readable by this user only)."""
    return Path.home() / ".config" / "ftd-worker" / "credentials.json"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FTD_WORKER_", extra="ignore", populate_by_name=True
    )

    token: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("FTD_WORKER_TOKEN"),
        description="The worker's credential (from POST /api/workers or the UI's Add a worker); "
        "`ftd-worker login` stores it instead.",
    )
    token_file: Path | None = Field(
        default=None,
        validation_alias=_alias("FTD_WORKER_TOKEN_FILE"),
        description="A file holding the token (a container secret, a file an enrol step wrote).",
    )
    api_url: str = Field(
        default="http://localhost:8000",
        validation_alias=_alias("FTD_API_URL", "FTD_WORKER_API_URL"),
        description="The platform's URL: the worker asks it who it is and how to reach the broker.",
    )
    amqp_url: SecretStr | None = Field(
        default=None,
        validation_alias=_alias("FTD_WORKER_AMQP_URL", "FTD_AMQP_URL"),
        description="Overrides the broker URL the platform gives (amqp:// locally, amqps:// for a "
        "remote broker); a cluster's nodes as a comma-separated list of URLs, tried in order.",
    )
    broker_prefix: str = Field(default="", validation_alias=_alias("FTD_BROKER_PREFIX"))
    ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the broker's certificate (amqps)."
    )
    cert_file: Path | None = Field(default=None, description="Client certificate (amqps).")
    key_file: Path | None = Field(default=None, description="Client certificate key (amqps).")

    provider: GPUProvider = GPUProvider.LOCAL
    job_types: list[JobType] | None = Field(
        default=None,
        description="Job types to take; default: what this machine's hardware can run.",
    )
    work_dir: Path = Field(default=Path.home() / ".cache" / "ftd-worker")
    model_store_dir: Path = Field(
        default=Path(".dev/models"), validation_alias=_alias("FTD_MODEL_STORE_DIR")
    )
    checkpoint_dir: Path | None = Field(
        default=None,
        validation_alias=_alias("FTD_WORKER_CHECKPOINT_DIR", "FTD_CHECKPOINT_DIR"),
        description="Where checkpoints outlive an attempt; default <work_dir>/checkpoints.",
    )
    hf_token: SecretStr | None = Field(
        default=None, validation_alias=_alias("FTD_WORKER_HF_TOKEN", "HF_TOKEN")
    )
    private_repos: bool = True
    data_url_allowed_hosts: str = Field(
        default="",
        validation_alias=_alias("FTD_WORKER_DATA_URL_ALLOWED_HOSTS", "FTD_DATA_URL_ALLOWED_HOSTS"),
        description="Comma-separated hosts (`files.example.com`) or suffixes (`.example.com`) a "
        "user's training_data_url may name even where they resolve to internal addresses.",
    )
    data_ca_file: Path | None = Field(
        default=None,
        description="A CA bundle trusted, besides the public CAs, when fetching a user's "
        "training_data_url: an operator's own file server (on the allow-list above) whose "
        "certificate a private CA signed.",
    )
    checkpoint_sync_interval: float = Field(
        default=30.0, gt=0, description="How often new checkpoints are copied while training."
    )

    download_retry_seconds: float = Field(
        default=300.0,
        ge=0,
        description="How long a download failing on the network or a 5xx is retried (resuming).",
    )
    publish_retry_seconds: float = Field(
        default=600.0, ge=0, description="How long pushing the model is retried on a Hub outage."
    )
    progress_interval: float = Field(
        default=2.0, gt=0, description="At most one progress report per this many seconds."
    )
    claim_timeout: float = Field(default=10.0, gt=0)
    connect_timeout: float = Field(
        default=300.0, gt=0, description="How long to keep trying the first broker connection."
    )
    stop_grace: float = Field(
        default=120.0,
        gt=0,
        description="After SIGTERM, how long the trainer may take to checkpoint before the job is "
        "handed back anyway.",
    )
    max_jobs: int | None = Field(default=None, ge=1, description="Exit after this many jobs.")
    console: bool | None = Field(
        default=None, description="Progress bars; default: when stdout is a terminal."
    )
    json_logs: bool = Field(default=False, validation_alias=_alias("FTD_JSON_LOGS"))
    log_level: str = Field(default="INFO", validation_alias=_alias("FTD_LOG_LEVEL"))

    supervise: bool = Field(
        default=True,
        description="Start the worker again (with back-off) if it ever fails unexpectedly.",
    )
    heartbeat_interval: float = Field(default=10.0, gt=0)

    @field_validator("amqp_url")
    @classmethod
    def _amqp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            broker_urls(value.get_secret_value())  # amqp(s):// each; never repeats the value
        return value

    @property
    def allowed_data_hosts(self) -> tuple[str, ...]:
        return tuple(h.strip() for h in self.data_url_allowed_hosts.split(",") if h.strip())

    @property
    def checkpoints(self) -> Path:
        return self.checkpoint_dir or self.work_dir / "checkpoints"
