"""Server-Sent Events: one job, or all of a user's jobs, live.

A stream opens with a `snapshot` event (the job or jobs as they are) and then sends every history
row (`status`, `progress`) as it is committed. Each event's `id` is the history row id, so a client
that reconnects with `Last-Event-ID` gets what it missed and nothing twice.

An idle stream holds no database connection and does no database work: it waits for the events
its feed (LiveHub: one per job, per user, and one for admins) reads once for all its streams
through the `streams` admission pool. Open streams are capped per user and per process (429).
"""

import json
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from job_api.adapters.job_queries import JobFilter
from job_api.entrypoints.deps import AppState, StateDep, StreamUserDep, scope
from job_api.entrypoints.live import (
    BATCH,
    JobsReader,
    LiveEvent,
    Reader,
    StreamSlot,
    TooManyStreams,
)
from job_api.entrypoints.schemas import FinetuneJobResponse, JobEventResponse
from job_api.service_layer import jobs as job_service
from job_api.service_layer.unit_of_work import UnitOfWork
from servicekit.errors import ApiError
from servicekit.responses import error_responses
from servicekit.uow import Units

router = APIRouter(prefix="/api/finetune", tags=["live"], responses=error_responses(401, 429))

KEEPALIVE_SECONDS = 15

_SSE_DOC = (
    "`text/event-stream`: a `snapshot` event first (the job, or a list of your jobs, as JSON), "
    "then one `status` or `progress` event per history row (data: a JobEventResponse as JSON; "
    "id: the row id, for `Last-Event-ID`), and comment pings while idle."
)
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": _SSE_DOC,
        "content": {
            "text/event-stream": {
                # One server-sent event (comment pings aside).
                "schema": {
                    "type": "object",
                    "required": ["data"],
                    "properties": {
                        "event": {"type": "string", "enum": ["snapshot", "status", "progress"]},
                        "data": {"type": "string", "contentMediaType": "application/json"},
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                        "retry": {"type": "integer"},
                    },
                }
            }
        },
    }
}


def _event(row: Any) -> LiveEvent:
    body = JobEventResponse.model_validate(dict(row._mapping)).model_dump_json()
    return LiveEvent(row.id, ServerSentEvent(data=body, event=row.kind, id=str(row.id)).encode())


async def read_events(
    units: Units[UnitOfWork], user_id: str | None, job_id: UUID | None, after_id: int, limit: int
) -> list[LiveEvent]:
    """History rows after `after_id` as encoded SSE events; the connection goes back before the
    events are handed to any stream."""
    async with units.reading("streams") as uow:
        rows = await uow.events.since(
            user_id=user_id, job_id=job_id, after_id=after_id, limit=limit
        )
    return [_event(row) for row in rows]


async def read_job_events(
    units: Units[UnitOfWork], cursors: dict[UUID, int], limit: int
) -> dict[UUID, list[LiveEvent]]:
    """Each job's history rows after its cursor, as encoded SSE events, in one query."""
    async with units.reading("streams") as uow:
        rows = await uow.events.since_jobs(cursors, limit=limit)
    found: dict[UUID, list[LiveEvent]] = {}
    for row in rows:
        found.setdefault(row.job_id, []).append(_event(row))
    return found


def live_readers(units: Units[UnitOfWork]) -> tuple[Reader, JobsReader]:
    """The LiveHub's readers over this process's database."""
    return partial(read_events, units), partial(read_job_events, units)


async def _snapshot(
    state: AppState, *, user_id: str | None, job_id: UUID | None
) -> tuple[int, Any]:
    async with state.units.reading("streams") as uow:
        # Rows committed from here on are streamed; the snapshot covers everything before.
        last = await uow.events.latest_id(user_id=user_id, job_id=job_id)
        if job_id is not None:
            job = await job_service.get_job(uow, job_id, user_id=user_id)
            return last, FinetuneJobResponse.of(job, state.waiting(job)).model_dump(mode="json")
        jobs, _ = await job_service.list_jobs(
            uow, JobFilter(user_id=user_id), limit=100, after=None
        )
        return last, [
            FinetuneJobResponse.of(j, state.waiting(j)).model_dump(mode="json") for j in jobs
        ]


async def _stream(
    request: Request,
    state: AppState,
    slot: StreamSlot,
    *,
    user_id: str | None,
    job_id: UUID | None,
    after: int | None,
) -> AsyncIterator[ServerSentEvent | bytes]:
    sub = None
    try:
        if after is not None:
            last = after
        else:
            last, snapshot = await _snapshot(state, user_id=user_id, job_id=job_id)
            # The connection is back in the pool before the (possibly slow) client reads this.
            yield ServerSentEvent(data=json.dumps(snapshot), event="snapshot", id=str(last))
        sub = state.live.subscribe(user_id=user_id, job_id=job_id, after=last)
        read_myself = True  # the rows committed before the feed had us
        # No disconnect check here: EventSourceResponse watches the client and cancels this
        # generator when it leaves (a check per event cost more than sending the event).
        while True:
            if read_myself or sub.behind:
                sub.caught_up()
                events = await read_events(state.units, user_id, job_id, last, BATCH)
                read_myself = len(events) == BATCH
            else:
                events = sub.take()
                if not events:
                    # No timeout: EventSourceResponse sends the keep-alive pings itself.
                    await sub.wake.wait()
                    continue
            for event in events:
                if event.id > last:
                    yield event.payload
                    last = event.id
    finally:
        if sub is not None:
            state.live.unsubscribe(sub)
        slot.release()


LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]
_MAX_EVENT_ID = 2**63 - 1  # job_events.id is a bigint


def event_cursor(last_event_id: str | None) -> int | None:
    """The event id a reconnecting client last saw, or None (send a snapshot first). What this
    server sends as `id:` is a decimal bigint; any other value (a stale or foreign header) is not
    a cursor into this stream, and the client starts over from a snapshot."""
    if last_event_id is None or not last_event_id.isascii() or not last_event_id.isdecimal():
        return None
    value = int(last_event_id)
    return value if value <= _MAX_EVENT_ID else None


def _open_stream(
    request: Request,
    state: AppState,
    principal_id: str,
    *,
    user_id: str | None,
    job_id: UUID | None,
    last_event_id: str | None,
) -> EventSourceResponse:
    try:
        slot = state.stream_limits.acquire(principal_id)
    except TooManyStreams as exc:
        raise ApiError(429, "too_many_streams", str(exc)) from None
    return EventSourceResponse(
        _stream(
            request, state, slot, user_id=user_id, job_id=job_id, after=event_cursor(last_event_id)
        ),
        ping=KEEPALIVE_SECONDS,
        # Also released if the body never starts (the generator's finally would not run).
        background=BackgroundTask(slot.release),
    )


@router.get("/jobs/stream", response_class=EventSourceResponse, responses=SSE_RESPONSES)
async def stream_my_jobs(
    request: Request, state: StateDep, user: StreamUserDep, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """Live events of all your jobs (SSE)."""
    return _open_stream(
        request,
        state,
        user.user_id,
        user_id=scope(user),
        job_id=None,
        last_event_id=last_event_id,
    )


@router.get(
    "/jobs/{job_id:uuid}/stream",
    response_class=EventSourceResponse,
    responses={**SSE_RESPONSES, **error_responses(404)},
)
async def stream_job(
    job_id: UUID,
    request: Request,
    state: StateDep,
    user: StreamUserDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Live events of one job (SSE)."""
    async with state.units.reading("streams") as uow:
        await job_service.get_job(uow, job_id, user_id=scope(user))
    return _open_stream(
        request,
        state,
        user.user_id,
        user_id=scope(user),
        job_id=job_id,
        last_event_id=last_event_id,
    )
