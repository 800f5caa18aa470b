"""The asynchronous client: the same calls as `ftd.Client`, awaited.

async with AsyncClient() as ftd:
    job = await ftd.jobs.get(job_id)
    async for event in job.events():
        ...
    job = await job.wait()
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Literal, TypeVar, Unpack, overload
from uuid import UUID

import httpx
from httpx_sse import EventSource, aconnect_sse
from tenacity import AsyncRetrying

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


class AsyncClient:
    """`ftd.Client` for asyncio code."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        store: TokenStore | None = None,
    ) -> None:
        self.base_url, self.token = resolve(base_url, token, store=store)
        self.retries = retries
        self.http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=client_headers(self.token),
            timeout=timeout,
            transport=transport,
        )
        self.jobs = AsyncJobs(self)
        self.datasets = AsyncDatasets(self)
        self.models = AsyncModels(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, call: Call[T]) -> T:
        try:
            async for attempt in AsyncRetrying(
                **retry_policy(self.retries, resend_safe=call.resend_safe)
            ):
                with attempt:
                    response = await self.http.request(
                        call.method, call.path, **call.request_kwargs()
                    )
                    return call.read(response)
        except httpx.TransportError as exc:
            raise unreachable(self.base_url, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def base_models(self) -> list[BaseModels]:
        return await self.call(_api.base_models())


class AsyncJobs:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    def _bind(self, info: JobInfo) -> AsyncJob:
        return AsyncJob.bound(info, self._client)

    async def create(
        self, *, idempotency_key: str | None = None, **job: Unpack[_api.NewJob]
    ) -> AsyncJob:
        """See `ftd.client.Jobs.create`."""
        call = _api.create_job(_api.job_body(**job), idempotency_key)
        return self._bind(await self._client.call(call))

    async def get(self, job_id: UUID | str) -> AsyncJob:
        return self._bind(await self._client.call(_api.get_job(job_id)))

    async def list(self, **filters: Unpack[_api.JobFilters]) -> Page[AsyncJob]:
        found = await self._client.call(_api.list_jobs(**filters))
        return Page((self._bind(j) for j in found), found.next_cursor)

    async def cancel(self, job_id: UUID | str) -> AsyncJob:
        return self._bind(await self._client.call(_api.cancel_job(job_id)))

    async def history(
        self, job_id: UUID | str, *, kind: str | None = None
    ) -> builtins.list[JobEvent]:
        events: builtins.list[JobEvent] = []
        cursor = ""
        while True:
            found = await self._client.call(
                _api.job_events(job_id, kind=kind, limit=200, cursor=cursor)
            )
            events += found
            if not found.next_cursor:
                return events
            cursor = found.next_cursor

    async def stream(
        self, job_id: UUID | str, *, since: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[JobEvent | JobSnapshot]:
        state = StreamState.start(since=since, timeout=timeout)
        path = _api.job_stream_path(job_id)
        while not state.ended:
            try:
                async for item in self._follow(path, state):
                    yield item
                state.closed()
            except STREAM_RETRY as exc:
                await asyncio.sleep(state.backoff(exc))
                state.check_deadline()

    async def _follow(self, path: str, state: StreamState) -> AsyncIterator[JobEvent | JobSnapshot]:
        http = self._client.http
        async with aconnect_sse(http, "GET", path, **state.request(http.timeout.connect)) as source:
            if not source.response.is_success:
                await source.response.aread()
                raise_for_response(source.response)
            state.connected()
            async for sse in source.aiter_sse():
                for item in state.take(sse):
                    yield item
                if state.done():
                    return


class AsyncJob(BoundJob[AsyncClient]):
    """A job bound to the `AsyncClient` that fetched it."""

    async def refresh(self) -> AsyncJob:
        return await self.client.jobs.get(self.id)

    async def cancel(self) -> AsyncJob:
        return await self.client.jobs.cancel(self.id)

    def events(
        self, *, since: int | None = None, timeout: float | None = None
    ) -> AsyncIterator[JobEvent | JobSnapshot]:
        """See `ftd.Job.events`."""
        return self.client.jobs.stream(self.id, since=since, timeout=timeout)

    async def wait(
        self, *, timeout: float | None = None, raise_on_failure: bool = False
    ) -> AsyncJob:
        """See `ftd.Job.wait`."""
        if not self.status.is_terminal:
            async for _ in self.events(timeout=timeout):
                pass
        final = await self.refresh()
        if raise_on_failure and final.status is not JobStatus.COMPLETED:
            raise JobFailed(final)
        return final


class AsyncDatasets:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def upload(
        self,
        path: str | Path,
        *,
        job_type: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
    ) -> Dataset | DryRun:
        """See `ftd.client.Datasets.upload`."""
        path = Path(path)
        # httpx reads the file part in 64 KiB chunks on the event loop as it sends them.
        file = await asyncio.to_thread(path.open, "rb")
        with file:
            body = ProgressFile(file, progress)
            call = _api.upload(path.name, body, job_type=job_type, dry_run=dry_run)
            return await self._client.call(call)

    async def get(self, dataset_id: UUID | str) -> Dataset:
        return await self._client.call(_api.get_dataset(dataset_id))


class AsyncModels:
    def __init__(self, client: AsyncClient) -> None:
        self._client = client

    async def list(self, **filters: Unpack[_api.ModelFilters]) -> Page[RegisteredModel]:
        return await self._client.call(_api.list_models(**filters))

    async def get(self, model_id: UUID | str) -> RegisteredModel:
        return await self._client.call(_api.get_model(model_id))

    async def deploy(self, model_id: UUID | str) -> RegisteredModel:
        return await self._client.call(_api.deploy_model(model_id))

    async def undeploy(self, model_id: UUID | str) -> RegisteredModel:
        return await self._client.call(_api.undeploy_model(model_id))

    # --- calling deployed models (see `ftd.client.Models`) -------------------------------------

    async def embed(self, model: str, texts: _api.Texts) -> Embeddings:
        return await self._client.call(_api.embed(model, texts))

    async def classify(self, model: str, texts: _api.Texts) -> Classifications:
        return await self._client.call(_api.classify(model, texts))

    @overload
    async def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: Literal[False] = False,
        **options: Unpack[_api.ChatOptions],
    ) -> ChatCompletion: ...

    @overload
    async def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: Literal[True],
        **options: Unpack[_api.ChatOptions],
    ) -> AsyncIterator[str]: ...

    async def chat(
        self,
        model: str,
        messages: _api.Messages,
        *,
        stream: bool = False,
        **options: Unpack[_api.ChatOptions],
    ) -> ChatCompletion | AsyncIterator[str]:
        """`stream=True`: an async iterator of the answer's text pieces (the request is sent
        when it is first advanced)."""
        body = _api.chat_body(model, messages, stream=stream, **options)
        if stream:
            return self._stream_chat(body)
        return await self._client.call(_api.chat(body))

    async def _open_chat_stream(self, body: dict[str, Any]) -> tuple[AsyncExitStack, EventSource]:
        try:
            async for attempt in AsyncRetrying(
                **retry_policy(self._client.retries, resend_safe=False)
            ):
                with attempt:
                    stack = AsyncExitStack()
                    source = await stack.enter_async_context(
                        aconnect_sse(self._client.http, "POST", _api.CHAT_PATH, json=body)
                    )
                    if not source.response.is_success:
                        async with stack:
                            await source.response.aread()
                            raise_for_response(source.response)
                    return stack, source
        except httpx.TransportError as exc:
            raise unreachable(self._client.base_url, exc) from exc
        raise AssertionError("unreachable: tenacity re-raises the last failure")

    async def _stream_chat(self, body: dict[str, Any]) -> AsyncIterator[str]:
        stack, source = await self._open_chat_stream(body)
        async with stack:
            async for sse in source.aiter_sse():
                if sse.data == _api.STREAM_DONE:
                    return
                if piece := _api.chat_delta(sse.data):
                    yield piece
