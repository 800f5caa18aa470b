"""Limits and HTTP manners, over a real uvicorn and TCP: body size (413 before auth, memory not
growing with the body), JSON only (415, 400), 401 with WWW-Authenticate, request ids, 405 with
the right Allow, capped SSE streams that hold no connection while idle, offline /docs, retention."""

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from job_api_testing import eventually, job_body, served_app, user_headers

from job_api.config import Settings
from job_api.entrypoints.app import retention_from
from job_api.entrypoints.housekeeping import prune_once

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
ALICE = user_headers("alice")


def _settings(settings_factory: Callable[..., Settings], **overrides: Any) -> Settings:
    return settings_factory(access_log=False, **overrides)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def _raw_post(port: int, *, chunked: bool, total: int) -> bytes:
    """POST `total` bytes without credentials, the way an abusive client would, and return what
    the server answered (reading stops at the first response)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {JOBS} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {total}\r\n\r\n"
    writer.write(head.encode())
    if not chunked:
        # The declared length alone is enough for a 413: nothing of the body is read.
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(65536), 10)
        writer.close()
        return answer
    chunk = b"x" * (256 * 1024)
    sent = 0
    answer = b""
    with contextlib.suppress(ConnectionError):
        while sent < total:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            sent += len(chunk)
            with contextlib.suppress(TimeoutError):
                answer += await asyncio.wait_for(reader.read(65536), 0.001)
            if answer:
                break
    with contextlib.suppress(ConnectionError, TimeoutError):
        answer += await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_huge_anonymous_body_is_refused_while_reading(
    settings_factory: Callable[..., Settings], chunked: bool
) -> None:
    settings = _settings(settings_factory, max_body_bytes=64 * 1024)
    async with served_app(settings) as (client, _app):
        port = int(str(client.base_url).rsplit(":", 1)[1])
        before = _rss_kib()
        answer = await _raw_post(port, chunked=chunked, total=256 * 1024 * 1024)
        grown_mib = (_rss_kib() - before) / 1024
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 413 " in status_line, answer[:300]
        body = (
            json.loads(rest.partition(b"\r\n\r\n")[2].split(b"\r\n")[-1] or b"{}")
            if not chunked
            else None
        )
        if body is not None:
            assert body["error"]["code"] == "payload_too_large"
        else:
            assert b"payload_too_large" in rest
        # The server stopped reading long before 256 MiB (no 401 after reading it all).
        assert grown_mib < 64, grown_mib
        # A body under the limit is still fine.
        ok = await client.post(JOBS, json=job_body(), headers=ALICE)
        assert ok.status_code == 201


async def test_a_415_is_read_whole_when_the_body_comes_after_the_headers(
    settings_factory: Callable[..., Settings],
) -> None:
    """A client that sends a body of the wrong type in a second write (requests does, and so does
    a client on a slow link) gets the whole 415 on a connection it can go on using: the server
    reads the rest of the small body before answering. Answering first and closing with the body
    still to come made the kernel reset the connection when the body arrived, and the client's
    unread 415 was lost with it (schemathesis saw `Connection reset by peer` under load)."""
    async with served_app(_settings(settings_factory)) as (client, _app):
        port = int(str(client.base_url).rsplit(":", 1)[1])
        body = json.dumps(job_body()).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head = (
                f"POST {JOBS} HTTP/1.1\r\nHost: x\r\nAuthorization: {ALICE['Authorization']}\r\n"
                f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode())
            await writer.drain()
            await asyncio.sleep(0.5)  # the server has the headers alone for a while
            writer.write(body)
            await writer.drain()
            await asyncio.sleep(0.5)
            answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert b" 415 " in answer.partition(b"\r\n")[0], answer
            assert b"connection: close" not in answer.lower(), answer
            length = int(answer.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            error = json.loads(await asyncio.wait_for(reader.readexactly(length), 10))
            assert error["error"]["code"] == "unsupported_media_type"
            # The connection is still good for the next request.
            writer.write(f"GET {JOBS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            await writer.drain()
            again = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            assert b" 401 " in again.partition(b"\r\n")[0], again
        finally:
            writer.close()


async def test_json_only_and_clear_errors(settings_factory: Callable[..., Settings]) -> None:
    async with served_app(_settings(settings_factory)) as (client, _app):
        wrong_type = await client.post(
            JOBS, content=json.dumps(job_body()), headers={**ALICE, "Content-Type": "text/plain"}
        )
        assert wrong_type.status_code == 415
        error = wrong_type.json()["error"]
        assert error["code"] == "unsupported_media_type"
        assert "application/json" in error["message"]

        broken = await client.post(
            JOBS, content=b'{"job_type": ', headers={**ALICE, "Content-Type": "application/json"}
        )
        assert broken.status_code == 400
        assert broken.json()["error"]["code"] == "invalid_json"

        anonymous = await client.get(JOBS)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
        bad_token = await client.get(JOBS, headers={"Authorization": "Bearer nope"})
        assert bad_token.headers["WWW-Authenticate"] == "Bearer"

        bogus_kind = await client.get(
            f"{JOBS}/{uuid.uuid4()}/events", params={"kind": "bogus"}, headers=ALICE
        )
        assert bogus_kind.status_code == 422
        assert (
            await client.get(JOBS, params={"status": "bogus"}, headers=ALICE)
        ).status_code == 422
        # An empty cursor is the first page.
        first = await client.get(JOBS, params={"cursor": ""}, headers=ALICE)
        assert first.status_code == 200


async def test_request_ids_and_allow(settings_factory: Callable[..., Settings]) -> None:
    async with served_app(_settings(settings_factory)) as (client, _app):
        mine = await client.get(JOBS, headers={**ALICE, "X-Request-Id": "gw-1234.abc"})
        assert mine.headers["X-Request-Id"] == "gw-1234.abc"
        fresh = await client.get(JOBS, headers={**ALICE, "X-Request-Id": "bad id\twith spaces"})
        generated = fresh.headers["X-Request-Id"]
        assert generated != "bad id\twith spaces"
        assert len(generated) == 32

        options = await client.options(JOBS, headers=ALICE)
        assert options.status_code == 405
        assert options.headers["Allow"] == "GET, POST"
        job_path = await client.put(f"{JOBS}/{uuid.uuid4()}", headers=ALICE)
        assert job_path.status_code == 405
        assert job_path.headers["Allow"] == "GET, PATCH, DELETE"
        # Literal paths are never taken for a job id.
        for path in ("pending", "stream"):
            response = await client.patch(f"{JOBS}/{path}", json={}, headers=ALICE)
            assert response.status_code == 405, response.text
            assert response.headers["Allow"] == "GET"


async def test_docs_work_offline(settings_factory: Callable[..., Settings]) -> None:
    async with served_app(_settings(settings_factory)) as (client, _app):
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "cdn." not in page.text
        assert "/docs-assets/swagger-ui-bundle.js" in page.text
        assert (await client.get("/docs-assets/swagger-ui-bundle.js")).status_code == 200
        document = (await client.get("/openapi.json")).json()
        schemes = document["components"]["securitySchemes"]
        assert schemes["userToken"]["scheme"] == "bearer"
        assert schemes["workerKey"]["scheme"] == "bearer"
        stream = document["paths"]["/api/finetune/jobs/stream"]["get"]["responses"]["200"]
        assert list(stream["content"]) == ["text/event-stream"]


@contextlib.asynccontextmanager
async def _open_stream(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> AsyncIterator[httpx.Response]:
    async with client.stream("GET", f"{JOBS}/stream", headers=headers) as response:
        yield response


async def _next_event(lines: AsyncIterator[str]) -> tuple[str, Any]:
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            return event, json.loads(line.partition(":")[2])
    raise AssertionError("stream ended")


async def _idle(state: Any) -> bool:
    return bool(state.db.pools["streams"].in_use == 0)


async def test_streams_are_capped_and_hold_no_connection_while_idle(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = _settings(settings_factory, max_streams_per_user=2, max_streams=3)
    async with served_app(settings) as (client, app), contextlib.AsyncExitStack() as stack:
        state = app.state.service
        streams = [await stack.enter_async_context(_open_stream(client, ALICE)) for _ in range(2)]
        lines = [s.aiter_lines() for s in streams]
        for it in lines:
            assert (await asyncio.wait_for(_next_event(it), 10))[0] == "snapshot"
        over_user = await client.get(f"{JOBS}/stream", headers=ALICE)
        assert over_user.status_code == 429
        assert over_user.json()["error"]["code"] == "too_many_streams"

        bob = await stack.enter_async_context(_open_stream(client, user_headers("bob")))
        assert bob.status_code == 200
        over_process = await client.get(f"{JOBS}/stream", headers=user_headers("carol"))
        assert over_process.status_code == 429

        # Three open streams, all idle: none holds a pooled connection.
        await eventually(lambda: _idle(state))
        # And each still wakes up for a new row.
        created = await client.post(JOBS, json=job_body(), headers=ALICE)
        job_id = created.json()["data"]["id"]
        for it in lines:
            kind, data = await asyncio.wait_for(_next_event(it), 10)
            assert (kind, data["job_id"]) == ("status", job_id)
        await eventually(lambda: _idle(state))
    # Closed streams give their places back.
    async with served_app(settings) as (client, app):
        assert app.state.service.stream_limits.open == 0


async def test_progress_has_one_type_in_rest_and_sse(
    settings_factory: Callable[..., Settings],
) -> None:
    async with served_app(_settings(settings_factory)) as (client, _app):
        job = (await client.post(JOBS, json=job_body(), headers=ALICE)).json()["data"]
        assert isinstance(job["progress"], float)
        assert job["phase"] in {"queued", "no_worker"}
        assert job["failure_class"] is None
        async with _open_stream(client, ALICE) as stream:
            kind, snapshot = await asyncio.wait_for(_next_event(stream.aiter_lines()), 10)
        assert kind == "snapshot"
        assert isinstance(snapshot[0]["progress"], float)


async def test_retention_prunes_old_history_keys_and_inbox_in_batches(
    settings_factory: Callable[..., Settings], db: Any
) -> None:
    settings = _settings(settings_factory, retention_batch=2, run_watchdog=False)
    async with served_app(settings) as (client, app):
        job_id = (await client.post(JOBS, json=job_body(), headers=ALICE)).json()["data"]["id"]
        await client.delete(f"{JOBS}/{job_id}", headers=ALICE)
        old = datetime.now(UTC) - timedelta(days=400)
        async with db.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO jobs.job_events (job_id, user_id, attempt, kind, data, created_at) "
                    "SELECT :job, 'alice', 1, 'progress', '{}'::jsonb, :old FROM generate_series(1, 5)"
                ),
                {"job": job_id, "old": old},
            )
            await conn.execute(
                sa.text(
                    "UPDATE jobs.jobs SET completed_at = :old, updated_at = :old WHERE id = :job"
                ),
                {"job": job_id, "old": old},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO jobs.idempotency_keys (user_id, key, request_hash, job_id, created_at) "
                    "VALUES ('alice', 'old', 'h', :job, :old)"
                ),
                {"job": job_id, "old": old},
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO jobs.inbox (consumer, event_id, processed_at) "
                    "SELECT 'job-api', gen_random_uuid(), :old FROM generate_series(1, 3)"
                ),
                {"old": old},
            )
        removed = await prune_once(
            app.state.service, retention_from(settings), now=datetime.now(UTC)
        )
        assert removed == {"history": 5, "idempotency_keys": 1, "inbox": 3}
        async with db.connect() as conn:
            kinds = (
                (await conn.execute(sa.text("SELECT kind FROM jobs.job_events ORDER BY id")))
                .scalars()
                .all()
            )
        # The timeline (status rows) stays.
        assert kinds
        assert set(kinds) == {"status"}
