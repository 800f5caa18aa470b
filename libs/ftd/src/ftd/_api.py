"""The API's routes as `Call`s, one function per operation (both clients send these), and the
keyword arguments the clients' methods take for them (`NewJob`, `JobFilters`, ...): each is
written once here, and `ftd.Client` and `ftd.AsyncClient` only send what these build."""

import json
from collections.abc import Mapping, Sequence
from typing import Any, Required, TypedDict, Unpack
from uuid import UUID

from ftd._calls import Call, Page, get, idempotency_key, many, one, page, unwrap
from ftd.models import (
    BaseModels,
    ChatCompletion,
    Classifications,
    Dataset,
    DryRun,
    Embeddings,
    JobEvent,
    JobInfo,
    RegisteredModel,
)

JOBS = "/api/finetune/jobs"
MODELS = "/api/models"
V1 = "/v1"

Texts = str | Sequence[str]
# A chat: a list of `{"role": ..., "content": ...}`, or one text (the user's message).
Messages = str | Sequence[Mapping[str, str]]


class NewJob(TypedDict, total=False):
    """A job to create (`jobs.create`, `jobs.estimate`)."""

    job_type: Required[str]
    base_model: Required[str]
    training_data_url: Required[str]
    output_model: Required[str]
    gpu_provider: Required[str]
    hyperparameters: Mapping[str, Any] | None
    project_id: str | None
    worker_pool: str | None


class JobFilters(TypedDict, total=False):
    """Which jobs `jobs.list` answers, and the page."""

    status: str | None
    job_type: str | None
    project: str | None
    limit: int | None
    cursor: str | None


class ModelFilters(TypedDict, total=False):
    """Which models `models.list` answers, and the page."""

    job_type: str | None
    status: str | None
    name: str | None
    limit: int | None
    cursor: str | None


class ChatOptions(TypedDict, total=False):
    max_tokens: int | None
    temperature: float | None


def _check_keywords(given: Mapping[str, Any], spec: Any, where: str) -> None:
    """A keyword `spec` (a TypedDict) does not name, or a required one missing, is the
    TypeError a misspelt argument gets."""
    unknown = sorted(set(given) - set(spec.__annotations__))
    missing = sorted(spec.__required_keys__ - set(given))
    if unknown:
        raise TypeError(f"{where}() got an unexpected keyword argument {unknown[0]!r}")
    if missing:
        raise TypeError(f"{where}() missing required keyword argument {missing[0]!r}")


def job_body(**job: Unpack[NewJob]) -> dict[str, Any]:
    _check_keywords(job, NewJob, "create")
    body: dict[str, Any] = {
        "job_type": str(job["job_type"]),
        "base_model": job["base_model"],
        "training_data_url": job["training_data_url"],
        "output_model": job["output_model"],
        "gpu_provider": str(job["gpu_provider"]),
    }
    hyperparameters = job.get("hyperparameters")
    optional = {
        "hyperparameters": dict(hyperparameters) if hyperparameters else None,
        "project_id": job.get("project_id"),
        "worker_pool": job.get("worker_pool"),
    }
    body.update({k: v for k, v in optional.items() if v is not None})
    return body


def create_job(body: Mapping[str, Any], key: str | None = None) -> Call[JobInfo]:
    # One key per creation: a retry of this call sends it again, so the server answers the job
    # the first attempt made instead of creating a second one.
    return Call(
        "POST",
        JOBS,
        one(JobInfo),
        json=dict(body),
        headers={"Idempotency-Key": key or idempotency_key()},
        resend_safe=True,
    )


def estimate_job(body: Mapping[str, Any]) -> Call[dict[str, Any]]:
    """The create route's dry run: nothing is created, so it is safe to send again."""
    return Call("POST", JOBS, unwrap, params={"dry_run": "true"}, json=dict(body), resend_safe=True)


def _query(
    filters: Mapping[str, Any], names: type, rename: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The query parameters, in the order `names` (a TypedDict) declares them."""
    _check_keywords(filters, names, "list")
    renamed = rename or {}
    return {renamed.get(name, name): filters.get(name) for name in names.__annotations__}


def list_jobs(**filters: Unpack[JobFilters]) -> Call[Page[JobInfo]]:
    return get(JOBS, page(JobInfo), **_query(filters, JobFilters))


def get_job(job_id: UUID | str) -> Call[JobInfo]:
    return get(f"{JOBS}/{job_id}", one(JobInfo))


def cancel_job(job_id: UUID | str) -> Call[JobInfo]:
    return Call("DELETE", f"{JOBS}/{job_id}", one(JobInfo))


def job_events(
    job_id: UUID | str, *, kind: str | None = None, limit: int | None = None, cursor: str = ""
) -> Call[Page[JobEvent]]:
    return get(f"{JOBS}/{job_id}/events", page(JobEvent), kind=kind, limit=limit, cursor=cursor)


def job_stream_path(job_id: UUID | str) -> str:
    return f"{JOBS}/{job_id}/stream"


def base_models() -> Call[list[BaseModels]]:
    return get("/api/finetune/base-models", many(BaseModels))


def upload(
    filename: str, fileobj: Any, *, job_type: str | None, dry_run: bool
) -> Call[Dataset | DryRun]:
    def parse(body: Any) -> Dataset | DryRun:
        return (DryRun if dry_run else Dataset).model_validate(unwrap(body))

    return Call(
        "POST",
        "/api/finetune/upload",
        parse,
        params={"job_type": job_type, "dry_run": "true" if dry_run else None},
        files={"file": (filename, fileobj, "application/octet-stream")},
    )


def get_dataset(dataset_id: UUID | str) -> Call[Dataset]:
    return get(f"/api/finetune/datasets/{dataset_id}", one(Dataset))


def list_models(**filters: Unpack[ModelFilters]) -> Call[Page[RegisteredModel]]:
    # The registry names the job type `type`.
    params = _query(filters, ModelFilters, {"job_type": "type"})
    return get(MODELS, page(RegisteredModel), **params)


def get_model(model_id: UUID | str) -> Call[RegisteredModel]:
    return get(f"{MODELS}/{model_id}", one(RegisteredModel))


def deploy_model(model_id: UUID | str) -> Call[RegisteredModel]:
    return Call("POST", f"{MODELS}/{model_id}/deploy", one(RegisteredModel))


def undeploy_model(model_id: UUID | str) -> Call[RegisteredModel]:
    return Call("POST", f"{MODELS}/{model_id}/undeploy", one(RegisteredModel))


# --- calling deployed models: model-server's OpenAI-style /v1/ (answers carry no envelope) ------


def _texts(texts: Texts) -> list[str]:
    return [texts] if isinstance(texts, str) else list(texts)


def messages_body(messages: Messages) -> list[dict[str, str]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def embed(model: str, texts: Texts) -> Call[Embeddings]:
    # Computing a vector changes nothing: safe to send again.
    body = {"model": model, "input": _texts(texts), "encoding_format": "float"}
    return Call("POST", f"{V1}/embeddings", Embeddings.model_validate, json=body, resend_safe=True)


def classify(model: str, texts: Texts) -> Call[Classifications]:
    body = {"model": model, "input": _texts(texts)}
    return Call(
        "POST", f"{V1}/classify", Classifications.model_validate, json=body, resend_safe=True
    )


CHAT_PATH = f"{V1}/chat/completions"


def chat_body(
    model: str, messages: Messages, *, stream: bool, **options: Unpack[ChatOptions]
) -> dict[str, Any]:
    _check_keywords(options, ChatOptions, "chat")
    body: dict[str, Any] = {
        "model": model,
        "messages": messages_body(messages),
        "stream": stream,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    return body


def chat(body: Mapping[str, Any]) -> Call[ChatCompletion]:
    return Call("POST", CHAT_PATH, ChatCompletion.model_validate, json=dict(body), resend_safe=True)


STREAM_DONE = "[DONE]"


def chat_delta(data: str) -> str:
    """The text one chunk of a streamed chat adds (OpenAI's `chat.completion.chunk`)."""
    chunk = json.loads(data)
    choices = chunk.get("choices") or [{}]
    content = (choices[0].get("delta") or {}).get("content")
    return content if isinstance(content, str) else ""
