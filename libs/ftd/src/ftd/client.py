"""The synchronous client.

from ftd import Client

with Client() as ftd:                      # http://localhost:8000, FTD_TOKEN or `ftd login`
    data = ftd.datasets.upload("reviews.csv", job_type="classifier")
    job = ftd.jobs.create(job_type="classifier", base_model="xlm-roberta-base",
                          training_data_url=data.training_data_url,
                          output_model="me/reviews", gpu_provider="colab")
    for event in job.events():
        print(event.kind, event.data if event.kind != "snapshot" else "")
    job = job.wait(raise_on_failure=True)
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal, TypeVar, Unpack, overload
from uuid import UUID

import httpx
from httpx_sse import EventSource, connect_sse
from tenacity import Retrying

from ftd import _api
from ftd._calls import Call, Page, client_headers, retry_policy, unreachable
from ftd._stream import STREAM_RETRY, StreamState
from ftd._upload import Progress, ProgressFile
from ftd.config import TokenStore, resolve
from ftd.errors import JobFailed, raise_for_response
from ftd.models import (
    BaseModels,
    BoundJob,
    ChatCompletion,
    Classifications,
    Dataset,
    DryRun,
    Embeddings,
    JobEvent,
    JobInfo,
    JobSnapshot,
    JobStatus,
    RegisteredModel,
)

T = TypeVar("T")


class Client:
    """Talks to a Finetune Dispatcher server (its gateway). Every answer's `{"data": ...}`
    envelope is unwrapped; errors raise `ftd.errors.FtdError` subclasses."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.BaseTransport | None = None,
        store: TokenStore | None = None,
    ) -> None:
        self.base_url, self.token = resolve(base_url, token, store=store)
        self.retries = retries
        self.http = httpx.Client(
            base_url=self.base_url,
            headers=client_headers(self.token),
            timeout=timeout,
            transport=transport,
        )
        self.jobs = Jobs(self)
        self.datasets = Datasets(self)
        self.models = Models(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def call(self, call: Call[T]) -> T:
        """Send one API call, with retries (see ftd._calls), and read its answer."""
        try:
            for attempt in Retrying(**retry_policy(self.retries, resend_safe=call.resend_safe)):
                with attempt:
                    response = self.http.request(call.method, call.path, **call.request_kwargs())
                    return call.read(response)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def base_models(self) -> list[BaseModels]:
        """The catalogue: base models and default hyperparameters per job type."""
        return self.call(_api.base_models())


class Jobs:
    def __init__(self, client: Client) -> None:
        self._client = client

    def _bind(self, info: JobInfo) -> Job:
        return Job.bound(info, self._client)

    def create(self, *, idempotency_key: str | None = None, **job: Unpack[_api.NewJob]) -> Job:
        """Create a job. An Idempotency-Key is made for this call (or pass your own), so its
        retries never create a second job."""
        call = _api.create_job(_api.job_body(**job), idempotency_key)
        return self._bind(self._client.call(call))

    def estimate(self, **job: Unpack[_api.NewJob]) -> dict[str, Any]:
        """A dry run of `create`: the same checks (the same errors), nothing created; answers the
        steps and the time on each kind of worker online (`estimates`), with `warnings`."""
        return self._client.call(_api.estimate_job(_api.job_body(**job)))

    def get(self, job_id: UUID | str) -> Job:
        return self._bind(self._client.call(_api.get_job(job_id)))

    def list(self, **filters: Unpack[_api.JobFilters]) -> Page[Job]:
        found = self._client.call(_api.list_jobs(**filters))
        return Page((self._bind(j) for j in found), found.next_cursor)

    def cancel(self, job_id: UUID | str) -> Job:
        return self._bind(self._client.call(_api.cancel_job(job_id)))

    def history(self, job_id: UUID | str, *, kind: str | None = None) -> builtins.list[JobEvent]:
        """Every recorded event of a job, oldest first (all pages)."""
        events: builtins.list[JobEvent] = []
        cursor = ""
        while True:
            found = self._client.call(_api.job_events(job_id, kind=kind, limit=200, cursor=cursor))
            events += found
            if not found.next_cursor:
                return events
            cursor = found.next_cursor

    def stream(
        self, job_id: UUID | str, *, since: int | None = None, timeout: float | None = None
    ) -> Iterator[JobEvent | JobSnapshot]:
        """The job's live events until it ends (see `Job.events`)."""
        state = StreamState.start(since=since, timeout=timeout)
        path = _api.job_stream_path(job_id)
        while not state.ended:
            try:
                yield from self._follow(path, state)
                state.closed()
            except STREAM_RETRY as exc:
                time.sleep(state.backoff(exc))
                state.check_deadline()

    def _follow(self, path: str, state: StreamState) -> Iterator[JobEvent | JobSnapshot]:
        http = self._client.http
        with connect_sse(http, "GET", path, **state.request(http.timeout.connect)) as source:
            if not source.response.is_success:
                source.response.read()
                raise_for_response(source.response)
            state.connected()
            for sse in source.iter_sse():
                yield from state.take(sse)
                if state.done():
                    return


class Job(BoundJob[Client]):
    """A job bound to the client that fetched it: `refresh`, `cancel`, `events`, `wait`."""

    def refresh(self) -> Job:
        return self.client.jobs.get(self.id)

    def cancel(self) -> Job:
        return self.client.jobs.cancel(self.id)

    def events(
        self, *, since: int | None = None, timeout: float | None = None
    ) -> Iterator[JobEvent | JobSnapshot]:
        """The job's events as they happen, until it ends: a `JobSnapshot` first (unless `since`,
        an event id, asks for the events after it instead, e.g. `since=0` for the whole
        history), then `JobEvent`s. A dropped connection is resumed with Last-Event-ID, so no
        event is missed or repeated. `timeout` (seconds) raises `WaitTimeout`."""
        return self.client.jobs.stream(self.id, since=since, timeout=timeout)

    def wait(self, *, timeout: float | None = None, raise_on_failure: bool = False) -> Job:
        """Follow the job until it ends and return it as it ended. With `raise_on_failure`, a
        failed or cancelled job raises `JobFailed` (its `.job` is the job)."""
        if not self.status.is_terminal:
            for _ in self.events(timeout=timeout):
                pass
        final = self.refresh()
        if raise_on_failure and final.status is not JobStatus.COMPLETED:
            raise JobFailed(final)
        return final


class Datasets:
    def __init__(self, client: Client) -> None:
        self._client = client

    def upload(
        self,
        path: str | Path,
        *,
        job_type: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> Dataset | DryRun:
        """Upload a training file, streamed from disk; `progress(sent, total)` is called as it
        goes. An invalid file raises `ValidationFailed` whose `details` is the report."""
        path = Path(path)
        with path.open("rb") as file:
            body = ProgressFile(file, progress)
            call = _api.upload(path.name, body, job_type=job_type, dry_run=dry_run)
            return self._client.call(call)

    def get(self, dataset_id: UUID | str) -> Dataset:
        return self._client.call(_api.get_dataset(dataset_id))


class Models:
    def __init__(self, client: Client) -> None:
        self._client = client

    def list(self, **filters: Unpack[_api.ModelFilters]) -> Page[RegisteredModel]:
        return self._client.call(_api.list_models(**filters))

    def get(self, model_id: UUID | str) -> RegisteredModel:
        return self._client.call(_api.get_model(model_id))

    def deploy(self, model_id: UUID | str) -> RegisteredModel:
        return self._client.call(_api.deploy_model(model_id))

    def undeploy(self, model_id: UUID | str) -> RegisteredModel:
        return self._client.call(_api.undeploy_model(model_id))

    # --- calling deployed models (model-server's /v1/ behind the gateway) ---------------------
    # A model deployed a moment ago answers 503 `model_loading` until its files are loaded; that
    # is retried like any 503. An undeployed name raises NotFound (`model_not_deployed`).

    def embed(self, model: str, texts: _api.Texts) -> Embeddings:
        """Embed one text or a list of texts with your deployed embedding model `owner/name`
        (`.vectors`: one list of floats per text, in order)."""
        return self._client.call(_api.embed(model, texts))

    def classify(self, model: str, texts: _api.Texts) -> Classifications:
        """Classify texts with your deployed classifier `owner/name` (`.data[i].label`,
        `.score`, `.scores`)."""
        return self._client.call(_api.classify(model, texts))

    @overload
    def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: Literal[False] = False,
        **options: Unpack[_api.ChatOptions],
    ) -> ChatCompletion: ...

    @overload
    def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: Literal[True],
        **options: Unpack[_api.ChatOptions],
    ) -> Iterator[str]: ...

    def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: bool = False,
        **options: Unpack[_api.ChatOptions],
    ) -> ChatCompletion | Iterator[str]:
        """Chat with your deployed LoRA model `owner/name`. `messages`: a list of
        `{"role", "content"}` or one text (the user's). `stream=True` returns an iterator of the
        answer's text pieces as they are generated."""
        body = _api.chat_body(model, messages, stream=stream, **options)
        if stream:
            return self._stream_chat(body)
        return self._client.call(_api.chat(body))

    def _open_chat_stream(self, body: dict[str, Any]) -> tuple[ExitStack, EventSource]:
        try:
            for attempt in Retrying(**retry_policy(self._client.retries, resend_safe=False)):
                with attempt:
                    stack = ExitStack()
                    source = stack.enter_context(
                        connect_sse(self._client.http, "POST", _api.CHAT_PATH, json=body)
                    )
                    if not source.response.is_success:
                        with stack:
                            source.response.read()
                            raise_for_response(source.response)
                    return stack, source
        except httpx.TransportError as exc:
            raise unreachable(self._client.base_url, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    def _stream_chat(self, body: dict[str, Any]) -> Iterator[str]:
        # Sent when the iterator is first advanced; a 503 while the model loads is retried as
        # other calls are (nothing has been generated yet).
        stack, source = self._open_chat_stream(body)
        with stack:
            for sse in source.iter_sse():
                if sse.data == _api.STREAM_DONE:
                    return
                if piece := _api.chat_delta(sse.data):
                    yield piece
