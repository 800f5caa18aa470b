"""Live job events over Server-Sent Events: snapshot, live tail, Last-Event-ID replay, scoping.

httpx's ASGI transport buffers a response until the app finishes it, which an endless event
stream never does, so these tests serve the app with uvicorn on a free local port.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from job_api_testing import WORKER_HEADERS, eventually, job_body, user_headers

from job_api.config import Settings
from job_api.entrypoints.app import create_app

pytestmark = pytest.mark.integration

JOBS = "/api/finetune/jobs"
ALICE = user_headers("alice")
BOB = user_headers("bob")
READ_TIMEOUT = 10


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn on 127.0.0.1 (an OS-chosen port), and a client for it."""
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=0,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())

    async def started() -> bool:
        assert not task.done(), "uvicorn stopped during start-up"
        return server.started

    try:
        await eventually(started, timeout=30)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@pytest.fixture
async def client(db: Any, settings_factory: Callable[..., Settings]) -> AsyncIterator[Any]:
    # No watchdog or presence monitor: with no worker about, the monitor would add `no_worker`
    # status rows to pending jobs at moments of its own choosing, and these tests count events.
    async with served(settings_factory(run_watchdog=False)) as c:
        yield c


@dataclass(frozen=True)
class Event:
    event: str
    id: str | None
    data: Any


class EventReader:
    """Parses a text/event-stream response into events; comments (pings) are skipped."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = READ_TIMEOUT) -> Event:
        return await asyncio.wait_for(self._read(), timeout)

    async def until(self, match: Callable[[Event], bool]) -> list[Event]:
        """Every event up to and including the first that matches."""
        seen: list[Event] = []
        while not seen or not match(seen[-1]):
            seen.append(await self.next())
        return seen

    async def _read(self) -> Event:
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            line = await anext(self._lines)
            if line == "":
                if data or fields:
                    return Event(fields.get("event", "message"), fields.get("id"), _json(data))
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value


def _json(lines: list[str]) -> Any:
    return json.loads("\n".join(lines)) if lines else None


@contextlib.asynccontextmanager
async def stream(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **params: str
) -> AsyncIterator[EventReader]:
    async with client.stream("GET", path, headers=headers, params=params) as response:
        yield EventReader(response)


async def create(client: httpx.AsyncClient, headers: dict[str, str] = ALICE, **kw: Any) -> str:
    response = await client.post(JOBS, json=job_body(**kw), headers=headers)
    assert response.status_code == 201, response.text
    job_id: str = response.json()["data"]["id"]
    return job_id


async def patch(client: httpx.AsyncClient, job_id: str, **body: Any) -> None:
    response = await client.patch(f"{JOBS}/{job_id}", json=body, headers=WORKER_HEADERS)
    assert response.status_code == 200, response.text


def is_progress(value: float) -> Callable[[Event], bool]:
    return lambda e: e.event == "progress" and e.data["data"]["progress"] == value


async def test_a_job_stream_sends_a_snapshot_then_live_events(client: httpx.AsyncClient) -> None:
    job_id = await create(client)

    async with stream(client, f"{JOBS}/{job_id}/stream", ALICE) as events:
        snapshot = await events.next()
        assert snapshot.event == "snapshot"
        assert snapshot.data["id"] == job_id
        assert snapshot.data["status"] == "pending"
        assert snapshot.id is not None
        assert snapshot.id.isdigit()

        await patch(client, job_id, status="running", progress=50)
        live = await events.until(is_progress(50))
        await patch(client, job_id, progress=70, step=7, loss=0.4)
        live += await events.until(is_progress(70))

    assert [e.event for e in live] == ["status", "progress", "progress"]
    claimed = live[0].data
    assert claimed["job_id"] == job_id
    assert claimed["attempt"] == 1
    assert (claimed["data"]["from_status"], claimed["data"]["to_status"]) == ("pending", "running")
    assert live[2].data["data"]["loss"] == 0.4
    ids = [int(snapshot.id), *(int(e.id or 0) for e in live)]
    assert ids == sorted(set(ids)), "event ids must strictly increase"
    assert all(int(e.id or 0) == e.data["id"] for e in live)


async def test_last_event_id_replays_what_was_missed(client: httpx.AsyncClient) -> None:
    job_id = await create(client)
    async with stream(client, f"{JOBS}/{job_id}/stream", ALICE) as events:
        snapshot = await events.next()
        await patch(client, job_id, status="running", progress=10)
        await patch(client, job_id, progress=20)
        first_time = await events.until(is_progress(20))
    assert snapshot.id is not None

    # Reconnect as EventSource does: no snapshot, the rows after the id, then live again.
    resumed = {**ALICE, "Last-Event-ID": snapshot.id}
    async with stream(client, f"{JOBS}/{job_id}/stream", resumed) as events:
        replayed = await events.until(is_progress(20))
        assert replayed == first_time
        await patch(client, job_id, status="completed")
        [done] = await events.until(lambda e: e.event == "status")
        assert done.data["data"]["to_status"] == "completed"

    from_first_live = {**ALICE, "Last-Event-ID": first_time[0].id or ""}
    async with stream(client, f"{JOBS}/{job_id}/stream", from_first_live) as events:
        again = await events.until(lambda e: e.id == done.id)
    assert again == [*first_time[1:], done]


@pytest.mark.parametrize("header", ["", "abc", "-1", "1.5", "+7", "9223372036854775808", "9" * 30])
async def test_a_last_event_id_that_is_no_event_id_starts_over_from_a_snapshot(
    client: httpx.AsyncClient, header: str
) -> None:
    job_id = await create(client)
    async with stream(
        client, f"{JOBS}/{job_id}/stream", {**ALICE, "Last-Event-ID": header}
    ) as events:
        first = await events.next()
    assert first.event == "snapshot"


async def test_the_user_stream_carries_only_the_callers_jobs(client: httpx.AsyncClient) -> None:
    older = await create(client)
    async with stream(client, f"{JOBS}/stream", ALICE) as events:
        snapshot = await events.next()
        assert snapshot.event == "snapshot"
        assert [j["id"] for j in snapshot.data] == [older]

        bobs = await create(client, BOB, output_model="bob/model")
        await patch(client, bobs, status="running", progress=30)
        alices = await create(client)
        await patch(client, alices, status="running", progress=40)
        seen = await events.until(is_progress(40))

    assert {e.data["job_id"] for e in seen} == {alices}
    assert [e.event for e in seen] == ["status", "status", "progress"]


async def test_the_admin_user_stream_carries_everyone(client: httpx.AsyncClient) -> None:
    admin = user_headers("root", admin=True)
    async with stream(client, f"{JOBS}/stream", admin) as events:
        await events.next()
        bobs = await create(client, BOB, output_model="bob/model")
        alices = await create(client)
        seen = await events.until(lambda e: e.data["job_id"] == alices)
    assert [e.data["job_id"] for e in seen] == [bobs, alices]


async def test_streams_refuse_other_users_and_bad_tokens(client: httpx.AsyncClient) -> None:
    job_id = await create(client)

    as_bob = await client.get(f"{JOBS}/{job_id}/stream", headers=BOB)
    assert as_bob.status_code == 404
    assert as_bob.json()["error"]["code"] == "job_not_found"
    unknown = await client.get(f"{JOBS}/00000000-0000-0000-0000-000000000000/stream", headers=ALICE)
    assert unknown.status_code == 404
    for path in (f"{JOBS}/{job_id}/stream", f"{JOBS}/stream"):
        anonymous = await client.get(path)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["code"] == "unauthorized"
        expired = await client.get(path, headers=user_headers("alice", ttl=-3600))
        assert expired.json()["error"]["code"] == "token_expired"


async def test_access_token_query_works_only_on_streams(client: httpx.AsyncClient) -> None:
    job_id = await create(client)
    token = ALICE["Authorization"].removeprefix("Bearer ")

    async with stream(client, f"{JOBS}/{job_id}/stream", access_token=token) as events:
        assert (await events.next()).data["id"] == job_id
    async with stream(client, f"{JOBS}/stream", access_token=token) as events:
        assert [j["id"] for j in (await events.next()).data] == [job_id]

    bad = await client.get(f"{JOBS}/{job_id}/stream", params={"access_token": "garbage"})
    assert bad.json()["error"]["code"] == "invalid_token"
    for path in (JOBS, f"{JOBS}/{job_id}", f"{JOBS}/{job_id}/events", "/api/finetune/base-models"):
        response = await client.get(path, params={"access_token": token})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "unauthorized"
    created = await client.post(JOBS, params={"access_token": token}, json=job_body())
    assert created.status_code == 401
