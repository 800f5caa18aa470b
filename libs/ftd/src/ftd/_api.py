"""The API's routes as `Call`s, one function per operation (both clients send these)."""

import json
from collections.abc import Mapping, Sequence
from typing import Any
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


def job_body(
    *,
    job_type: str,
    base_model: str,
    training_data_url: str,
    output_model: str,
    gpu_provider: str,
    hyperparameters: Mapping[str, Any] | None = None,
    project_id: str | None = None,
    worker_pool: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "job_type": str(job_type),
        "base_model": base_model,
        "training_data_url": training_data_url,
        "output_model": output_model,
        "gpu_provider": str(gpu_provider),
    }
    optional = {
        "hyperparameters": dict(hyperparameters) if hyperparameters else None,
        "project_id": project_id,
        "worker_pool": worker_pool,
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


def list_jobs(
    *,
    status: str | None = None,
    job_type: str | None = None,
    project: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[JobInfo]]:
    return get(
        JOBS,
        page(JobInfo),
        status=status,
        job_type=job_type,
        project=project,
        limit=limit,
        cursor=cursor,
    )


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


def list_models(
    *,
    job_type: str | None = None,
    status: str | None = None,
    name: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[RegisteredModel]]:
    return get(
        MODELS,
        page(RegisteredModel),
        type=job_type,
        status=status,
        name=name,
        limit=limit,
        cursor=cursor,
    )


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
    model: str,
    messages: Messages,
    *,
    stream: bool,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model,
        "messages": messages_body(messages),
        "stream": stream,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if temperature is not None:
        body["temperature"] = temperature
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
