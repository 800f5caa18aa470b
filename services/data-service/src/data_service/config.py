"""data-service settings: the only module that reads the environment (entry points pass values
on). The platform-wide ones come from servicekit's PlatformSettings (`FTD_*`, the data ticket
secret included); data-service's own use the `DATA_SERVICE_` prefix."""

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from data_service.service_layer.validation.limits import BLOCK_BYTES, Limits
from servicekit.config import DataTicketSettings, PostgresUrl


class Settings(DataTicketSettings):
    model_config = SettingsConfigDict(env_prefix="DATA_SERVICE_")

    database_url: PostgresUrl = "postgresql://data_service:data_service_dev@127.0.0.1:5432/finetune"
    db_password: SecretStr = SecretStr("data_service_dev")

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

    @model_validator(mode="after")
    def _s3_credentials(self) -> Self:
        if self.storage_backend == "s3" and (
            self.s3_access_key is None or self.s3_secret_key is None
        ):
            raise ValueError(
                "DATA_SERVICE_S3_ACCESS_KEY and DATA_SERVICE_S3_SECRET_KEY must be set for S3 storage."
            )
        return self

    @property
    def limits(self) -> Limits:
        return Limits(
            max_errors=self.max_errors,
            max_line_bytes=self.max_line_bytes,
            max_field_chars=self.max_field_chars,
            min_rows=self.min_rows,
        )
