"""The client against httpx's MockTransport: the envelope is unwrapped, errors are typed with the
API's code, job creations carry one Idempotency-Key across their retries, uploads stream with
progress, and a dropped event stream resumes from Last-Event-ID."""

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import ftd
import httpx
import pytest
from ftd import Client
from ftd.models import JobEvent, JobSnapshot

JOB_ID = uuid.UUID("0b7c5c1e-8d4e-4e5e-9a51-3d8a3f2b9c10")
NOW = "2026-01-01T00:00:00Z"


def job(status: str = "pending", **more: Any) -> dict[str, Any]:
    return {
        "id": str(JOB_ID),
        "user_id": "alice",
        "project_id": None,
        "job_type": "classifier",
        "base_model": "xlm-roberta-base",
        "training_data_url": "ftd://datasets/" + str(uuid.uuid4()),
        "dataset_id": None,
        "output_model": "alice/reviews",
        "output_revision": None,
        "gpu_provider": "local",
        "worker_pool": "shared",
        "status": status,
        "phase": "queued",
        "progress": 0,
        "error": None,
        "failure_class": None,
        "logs_url": None,
        "hyperparameters": {},
        "metrics": {},
        "step": None,
        "total_steps": None,
        "epoch": None,
        "eta_seconds": None,
        "attempt": 1,
        "max_attempts": 3,
        "worker_id": None,
        "lease_expires_at": None,
        "created_at": NOW,
        "updated_at": NOW,
        "started_at": None,
        "completed_at": None,
        "a_field_added_later": 1,
        **more,
    }


def make(handler: Callable[[httpx.Request], httpx.Response]) -> Client:
    return Client("http://ftd.test", token="tok", transport=httpx.MockTransport(handler), retries=2)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # tenacity's and the stream's back-off: instant here.
    monkeypatch.setattr("tenacity.nap.time.sleep", lambda _: None)
    monkeypatch.setattr("ftd.client.time.sleep", lambda _: None)


def test_answers_are_unwrapped_from_the_data_envelope() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/jobs"):
            return httpx.Response(200, json={"data": [job()], "next_cursor": "c2", "limit": 1})
        return httpx.Response(200, json={"data": job("running")})

    with make(handler) as client:
        got = client.jobs.get(JOB_ID)
        page = client.jobs.list(limit=1)
    assert got.id == JOB_ID
    assert got.status is ftd.JobStatus.RUNNING
    assert got.model_extra == {"a_field_added_later": 1}
    assert len(page) == 1
    assert page.next_cursor == "c2"
    assert page.has_more
    assert seen[0].headers["Authorization"] == "Bearer tok"
    assert seen[1].url.params["limit"] == "1"


def test_list_filters_go_in_the_query_and_a_misspelt_one_is_a_type_error() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "next_cursor": None})

    with make(handler) as client:
        client.jobs.list(job_type="classifier", status="running")
        client.models.list(job_type="embedding", name="alice/x")
        with pytest.raises(TypeError, match="statuss"):
            client.jobs.list(statuss="running")  # type: ignore[call-arg]
        with pytest.raises(TypeError, match="base_model"):
            client.jobs.create(  # type: ignore[call-arg]
                job_type="classifier",
                training_data_url="ftd://datasets/x",
                output_model="alice/x",
                gpu_provider="local",
            )
    assert [r.url.query.decode() for r in seen] == [
        "status=running&job_type=classifier",
        "type=embedding&name=alice%2Fx",
    ]


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (400, "malformed_multipart", ftd.BadRequest),
        (401, "unauthorized", ftd.Unauthorized),
        (403, "forbidden", ftd.Forbidden),
        (404, "job_not_found", ftd.NotFound),
        (409, "job_not_cancellable", ftd.Conflict),
        (422, "validation_error", ftd.ValidationFailed),
        (429, "too_many_streams", ftd.RateLimited),
        (500, "internal_error", ftd.ServerError),
    ],
)
def test_errors_are_typed_and_carry_the_api_code(
    status: int, code: str, error: type[ftd.FtdError]
) -> None:
    body = {"error": {"code": code, "message": "A sentence.", "details": {"x": 1}}}
    with make(lambda _: httpx.Response(status, json=body)) as client, pytest.raises(error) as info:
        client.jobs.get(JOB_ID)
    assert isinstance(info.value, ftd.ApiError)
    assert (info.value.code, info.value.message, info.value.status) == (code, "A sentence.", status)
    assert info.value.details == {"x": 1}


def test_an_error_without_the_envelope_is_still_typed() -> None:
    with (
        make(lambda _: httpx.Response(502, text="<html>Bad Gateway</html>")) as client,
        pytest.raises(ftd.ServerError) as info,
    ):
        client.jobs.get(JOB_ID)
    assert info.value.status == 502
    assert info.value.code == "bad_gateway"


def test_a_creation_sends_one_idempotency_key_across_its_retries_and_a_new_one_per_call() -> None:
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset mid-answer")
        if len(keys) == 2:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        return httpx.Response(201, json={"data": job()})

    args = {
        "job_type": "classifier",
        "base_model": "xlm-roberta-base",
        "training_data_url": "ftd://datasets/x",
        "output_model": "alice/reviews",
        "gpu_provider": "local",
    }
    with make(handler) as client:
        created = client.jobs.create(**args, hyperparameters={"epochs": 2})
        client.jobs.create(**args)
    assert created.id == JOB_ID
    assert len(keys) == 4
    assert keys[0] == keys[1] == keys[2], "retries resend the same key"
    assert keys[3] != keys[0], "each creation has its own key"


def test_a_dataset_not_ready_yet_is_retried_after_the_wait_the_server_asks() -> None:
    keys: list[str] = []
    waits: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            body = {"error": {"code": "dataset_not_ready", "message": "Try again in 1 s."}}
            return httpx.Response(409, json=body, headers={"Retry-After": "1"})
        return httpx.Response(201, json={"data": job()})

    with make(handler) as client, pytest.MonkeyPatch.context() as patch:
        patch.setattr("tenacity.nap.time.sleep", waits.append)
        created = client.jobs.create(
            job_type="classifier",
            base_model="xlm-roberta-base",
            training_data_url="ftd://datasets/x",
            output_model="alice/reviews",
            gpu_provider="local",
        )
    assert created.id == JOB_ID
    assert keys[0] == keys[1]
    assert waits == [1.0]


def test_other_conflicts_are_not_retried() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        body = {"error": {"code": "illegal_transition", "message": "A completed job cannot..."}}
        return httpx.Response(409, json=body)

    with make(handler) as client, pytest.raises(ftd.Conflict):
        client.jobs.cancel(JOB_ID)
    assert calls == [1]


def test_a_cancel_is_not_resent_after_a_connection_broke_mid_way() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadError("reset")

    with make(handler) as client, pytest.raises(ftd.ConnectionFailed):
        client.jobs.cancel(JOB_ID)
    assert calls == ["DELETE"]


def test_an_unreachable_server_is_retried_then_a_connection_failed() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ConnectError("refused")

    with make(handler) as client, pytest.raises(ftd.ConnectionFailed) as info:
        client.jobs.cancel(JOB_ID)
    assert len(calls) == 3  # retries=2
    assert info.value.code == "connection_failed"


def test_an_upload_streams_the_file_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_bytes(b"text,label\n" + b"a fine review,positive\n" * 20_000)
    size = path.stat().st_size
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        body = b"".join(request.stream)  # type: ignore[union-attr]
        seen["length"] = request.headers.get("Content-Length")
        seen["has_file"] = path.read_bytes() in body
        seen["params"] = dict(request.url.params)
        dataset = {
            "id": str(uuid.uuid4()),
            "filename": "reviews.csv",
            "format": "csv",
            "shape": "text_label",
            "job_type": "classifier",
            "job_types": ["classifier"],
            "rows": 20_000,
            "columns": ["text", "label"],
            "size_bytes": size,
            "sha256": "0" * 64,
            "stats": {},
            "validation": {"valid": True},
            "training_data_url": "ftd://datasets/x",
            "created_at": NOW,
        }
        return httpx.Response(201, json={"data": dataset})

    calls: list[tuple[int, int | None]] = []
    with make(handler) as client:
        dataset = client.datasets.upload(
            path, job_type="classifier", progress=lambda s, t: calls.append((s, t))
        )
    assert isinstance(dataset, ftd.Dataset)
    assert dataset.rows == 20_000
    assert seen["has_file"]
    assert seen["length"] is not None
    assert seen["params"] == {"job_type": "classifier"}
    assert len(calls) > 2, "progress came in chunks, not once for a file read whole"
    assert calls[-1] == (size, size)
    assert [s for s, _ in calls] == sorted(s for s, _ in calls)


def sse(event: str, data: Any, event_id: int) -> bytes:
    return f"event: {event}\nid: {event_id}\ndata: {json.dumps(data)}\n\n".encode()


def row(event_id: int, kind: str, **data: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "job_id": str(JOB_ID),
        "attempt": 1,
        "kind": kind,
        "data": data,
        "created_at": NOW,
    }


class Breaking(httpx.SyncByteStream):
    """An SSE body that sends some events, then drops the connection."""

    def __init__(self, chunks: list[bytes], *, then_drop: bool) -> None:
        self.chunks = chunks
        self.then_drop = then_drop

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.then_drop:
            raise httpx.RemoteProtocolError("peer closed connection mid-stream")


def test_a_dropped_stream_resumes_from_the_last_event_id_without_loss_or_repeat() -> None:
    requests: list[httpx.Request] = []
    history = [row(11, "status", to_status="running", phase="training")] + [
        row(11 + i, "progress", step=i, total_steps=4, loss=1.0 / i) for i in range(1, 5)
    ]
    history[1:] = [row(12 + i, "progress", step=i + 1, total_steps=4) for i in range(4)]
    history.append(row(16, "status", to_status="completed", phase="done"))

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        headers = {"content-type": "text/event-stream"}
        if len(requests) == 1:
            chunks = [sse("snapshot", job(), 10)] + [
                sse(r["kind"], r, r["id"]) for r in history[:3]
            ]
            return httpx.Response(200, headers=headers, stream=Breaking(chunks, then_drop=True))
        after = int(request.headers["Last-Event-ID"])
        # The server may resend what was already delivered; the client must not repeat it.
        rest = [sse(r["kind"], r, r["id"]) for r in history if r["id"] >= after]
        return httpx.Response(200, headers=headers, stream=Breaking(rest, then_drop=False))

    with make(handler) as client:
        items = list(client.jobs.stream(JOB_ID))
    assert isinstance(items[0], JobSnapshot)
    assert items[0].id == 10
    events = [i for i in items if isinstance(i, JobEvent)]
    assert [e.id for e in events] == [11, 12, 13, 14, 15, 16]
    assert len(requests) == 2
    assert "Last-Event-ID" not in requests[0].headers
    assert requests[1].headers["Last-Event-ID"] == "13"
    assert events[-1].to_status is ftd.JobStatus.COMPLETED


class AsyncBreaking(httpx.AsyncByteStream):
    """`Breaking` for the async client."""

    def __init__(self, chunks: list[bytes], *, then_drop: bool) -> None:
        self.chunks = chunks
        self.then_drop = then_drop

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk
        if self.then_drop:
            raise httpx.RemoteProtocolError("peer closed connection mid-stream")


async def test_the_async_stream_resumes_from_the_last_event_id_too() -> None:
    requests: list[httpx.Request] = []
    history = [row(11 + i, "progress", step=i + 1, total_steps=3) for i in range(3)]
    history.append(row(14, "status", to_status="completed", phase="done"))

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        headers = {"content-type": "text/event-stream"}
        if len(requests) == 1:
            chunks = [sse("snapshot", job("running"), 10), sse("progress", history[0], 11)]
            return httpx.Response(
                200, headers=headers, stream=AsyncBreaking(chunks, then_drop=True)
            )
        after = int(request.headers["Last-Event-ID"])
        rest = [sse(r["kind"], r, r["id"]) for r in history if r["id"] >= after]
        return httpx.Response(200, headers=headers, stream=AsyncBreaking(rest, then_drop=False))

    transport = httpx.MockTransport(handler)
    async with ftd.AsyncClient("http://ftd.test", token="tok", transport=transport) as client:
        items = [item async for item in client.jobs.stream(JOB_ID)]
    events = [i for i in items if isinstance(i, JobEvent)]
    assert isinstance(items[0], JobSnapshot)
    assert [e.id for e in events] == [11, 12, 13, 14]
    assert requests[1].headers["Last-Event-ID"] == "11"


def test_a_stream_of_an_ended_job_stops_at_its_snapshot() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=Breaking([sse("snapshot", job("failed", error="bad data"), 7)], then_drop=False),
        )

    with make(handler) as client:
        items = list(client.jobs.stream(JOB_ID))
    assert len(items) == 1
    assert isinstance(items[0], JobSnapshot)
    assert items[0].job.status is ftd.JobStatus.FAILED


def test_wait_raises_job_failed_when_asked() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": job("failed", error="one class only")})

    with make(handler) as client:
        failed = client.jobs.get(JOB_ID)
        assert failed.wait().status is ftd.JobStatus.FAILED
        with pytest.raises(ftd.JobFailed) as info:
            failed.wait(raise_on_failure=True)
    assert info.value.code == "job_failed"
    assert info.value.job.error == "one class only"


def test_a_stream_refused_with_404_raises_not_found_at_once() -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404, json={"error": {"code": "job_not_found", "message": "No."}})

    with make(handler) as client, pytest.raises(ftd.NotFound):
        list(client.jobs.stream(JOB_ID))
    assert calls == [1]
