"""Server-Sent Events: one job, or all of a user's jobs, live.

A stream opens with a `snapshot` event (the job or jobs as they are) and then sends every history
row (`status`, `progress`) as it is committed. Each event's `id` is the history row id, so a client
that reconnects with `Last-Event-ID` gets what it missed and nothing twice.
"""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from job_api.adapters.repository import JobFilter
from job_api.entrypoints.deps import AppState, StateDep, UserDep, scope
from job_api.entrypoints.schemas import FinetuneJobResponse, JobEventResponse
from job_api.service_layer import jobs as job_service
from job_api.service_layer.unit_of_work import UnitOfWork
from servicekit.responses import error_responses

router = APIRouter(prefix="/api/finetune", tags=["live"], responses=error_responses(401, 404))

BATCH = 500
KEEPALIVE_SECONDS = 15


def _event(row: Any) -> ServerSentEvent:
    body = JobEventResponse.model_validate(dict(row._mapping)).model_dump(mode="json")
    return ServerSentEvent(data=json.dumps(body), event=row.kind, id=str(row.id))


async def _stream(
    request: Request,
    state: AppState,
    *,
    user_id: str | None,
    job_id: UUID | None,
    last_event_id: str | None,
) -> AsyncIterator[ServerSentEvent]:
    sub = state.live.subscribe(user_id=user_id, job_id=job_id)
    try:
        async with state.db.read("streams") as conn:
            uow = UnitOfWork(conn)
            if last_event_id is not None and last_event_id.isdigit():
                last = int(last_event_id)
            else:
                # Rows committed from here on are streamed; the snapshot covers everything before.
                last = await uow.events.latest_id(user_id=user_id, job_id=job_id)
                if job_id is not None:
                    job = await job_service.get_job(uow, job_id, user_id=user_id)
                    snapshot: Any = FinetuneJobResponse.of(job).model_dump(mode="json")
                else:
                    jobs, _ = await job_service.list_jobs(
                        uow, JobFilter(user_id=user_id), limit=100, after=None
                    )
                    snapshot = [FinetuneJobResponse.of(j).model_dump(mode="json") for j in jobs]
                yield ServerSentEvent(data=json.dumps(snapshot), event="snapshot", id=str(last))
        while not await request.is_disconnected():
            async with state.db.read("streams") as conn:
                rows = await UnitOfWork(conn).events.since(
                    user_id=user_id, job_id=job_id, after_id=last, limit=BATCH
                )
            for row in rows:
                yield _event(row)
                last = row.id
            if len(rows) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.wake.wait(), KEEPALIVE_SECONDS)
            sub.wake.clear()
    finally:
        state.live.unsubscribe(sub)


LastEventId = Annotated[str | None, Header(alias="Last-Event-ID")]


@router.get("/jobs/stream")
async def stream_my_jobs(
    request: Request, state: StateDep, user: UserDep, last_event_id: LastEventId = None
) -> EventSourceResponse:
    """Live events of all your jobs (SSE)."""
    return EventSourceResponse(
        _stream(request, state, user_id=scope(user), job_id=None, last_event_id=last_event_id),
        ping=KEEPALIVE_SECONDS,
    )


@router.get("/jobs/{job_id}/stream")
async def stream_job(
    job_id: UUID,
    request: Request,
    state: StateDep,
    user: UserDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """Live events of one job (SSE)."""
    async with state.db.read("streams") as conn:
        await job_service.get_job(UnitOfWork(conn), job_id, user_id=scope(user))
    return EventSourceResponse(
        _stream(request, state, user_id=scope(user), job_id=job_id, last_event_id=last_event_id),
        ping=KEEPALIVE_SECONDS,
    )
