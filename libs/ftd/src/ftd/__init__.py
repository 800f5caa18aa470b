"""Finetune Dispatcher's Python SDK: `Client` and `AsyncClient` (see their docstrings), typed
errors in `ftd.errors`, response models in `ftd.models`. The `ftd` command is `ftd.cli`."""

from ftd._calls import Page
from ftd.async_client import AsyncClient, AsyncJob
from ftd.client import Client, Job
from ftd.config import TokenStore
from ftd.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    FtdError,
    JobFailed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    WaitTimeout,
)
from ftd.models import (
    BaseModels,
    Dataset,
    DryRun,
    JobEvent,
    JobInfo,
    JobSnapshot,
    JobStatus,
    JobType,
    ModelStatus,
    RegisteredModel,
)
from ftd.version import __version__

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJob",
    "BadRequest",
    "BaseModels",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Dataset",
    "DryRun",
    "Forbidden",
    "FtdError",
    "Job",
    "JobEvent",
    "JobFailed",
    "JobInfo",
    "JobSnapshot",
    "JobStatus",
    "JobType",
    "ModelStatus",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "RateLimited",
    "RegisteredModel",
    "ServerError",
    "ServiceUnavailable",
    "TokenStore",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationFailed",
    "WaitTimeout",
    "__version__",
]
