"""The statements that stage a write's side effects: history rows (each job they touch woken by a
NOTIFY) and outbox rows, from one array parameter per column, so each is compiled and prepared
once whatever the number of rows. Job writes (jobs.py, fast_path.py) embed them as CTEs, so a job
saved with its events is one round trip."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from job_api.adapters.tables import JOB_EVENTS_CHANNEL, job_events, outbox
from servicekit.db import json_text


def only_if(rows: sa.Select[Any], applied: sa.CTE | None) -> sa.Select[Any]:
    """`rows`, or none of them when the `applied` write (a CTE) changed no row."""
    return rows if applied is None else rows.where(sa.exists(sa.select(applied.c.id)))


def insert_events_and_notify(applied: sa.CTE | None = None) -> sa.Select[Any]:
    """History rows in, and one NOTIFY (`<job id>:<user id>`) per job they touch, in one round
    trip: a stream that is woken reads every row after its last id, so one wake per job suffices.
    With `applied`, only if that write changed a row.

    The rows travel as one array parameter per column, so the statement is compiled and prepared
    once whatever the number of rows (a multi-row VALUES is compiled anew on every call).
    """
    src = (
        sa.func.unnest(
            sa.cast(sa.bindparam("job_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
            sa.cast(sa.bindparam("user_ids"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("attempts"), pg.ARRAY(sa.Integer)),
            sa.cast(sa.bindparam("kinds"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("data"), pg.ARRAY(sa.Text)),
        )
        .table_valued("job_id", "user_id", "attempt", "kind", "data", with_ordinality="n")
        .render_derived()
    )
    rows = only_if(
        sa.select(
            src.c.job_id, src.c.user_id, src.c.attempt, src.c.kind, sa.cast(src.c.data, pg.JSONB)
        ).order_by(src.c.n),  # ids follow the order of the rows given
        applied,
    )
    inserted = (
        pg.insert(job_events)
        .from_select(["job_id", "user_id", "attempt", "kind", "data"], rows)
        .returning(job_events.c.id, job_events.c.job_id, job_events.c.user_id)
        .cte("inserted")
    )
    touched = (
        sa.select(sa.func.concat_ws(":", inserted.c.job_id, inserted.c.user_id).label("p"))
        .distinct()
        .subquery("touched")
    )
    return sa.select(
        sa.func.pg_notify(sa.cast(sa.bindparam("channel"), sa.Text), touched.c.p)
    ).select_from(touched)


INSERT_EVENTS = insert_events_and_notify()


def stage_outbox(applied: sa.CTE | None = None) -> sa.CTE:
    """Outbox rows from one array parameter per column (compiled once whatever their number);
    with `applied`, only if that write changed a row."""
    src = (
        sa.func.unnest(
            sa.cast(sa.bindparam("outbox_event_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
            sa.cast(sa.bindparam("outbox_event_types"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("outbox_routing_keys"), pg.ARRAY(sa.Text)),
            sa.cast(sa.bindparam("outbox_bodies"), pg.ARRAY(sa.LargeBinary)),
            sa.cast(sa.bindparam("outbox_must_route"), pg.ARRAY(sa.Boolean)),
        )
        .table_valued(
            "event_id", "event_type", "routing_key", "body", "must_route", with_ordinality="n"
        )
        .render_derived()
    )
    return (
        pg.insert(outbox)
        .from_select(
            ["event_id", "event_type", "routing_key", "body", "must_route"],
            only_if(
                sa.select(
                    src.c.event_id,
                    src.c.event_type,
                    src.c.routing_key,
                    src.c.body,
                    src.c.must_route,
                ).order_by(src.c.n),  # outbox ids follow the order of the events (relay order)
                applied,
            ),
        )
        .returning(outbox.c.id)
        .cte("staged")
    )


def outbox_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "outbox_event_ids": [r["event_id"] for r in rows],
        "outbox_event_types": [r["event_type"] for r in rows],
        "outbox_routing_keys": [r["routing_key"] for r in rows],
        "outbox_bodies": [r["body"] for r in rows],
        "outbox_must_route": [r["must_route"] for r in rows],
    }


# Outbox rows and history rows (with their NOTIFY) in one statement.
STAGE_EVENTS = insert_events_and_notify().add_cte(stage_outbox())


def history_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_ids": [r["job_id"] for r in rows],
        "user_ids": [r["user_id"] for r in rows],
        "attempts": [r["attempt"] for r in rows],
        "kinds": [r["kind"] for r in rows],
        "data": [json_text(r["data"]) for r in rows],
        "channel": JOB_EVENTS_CHANNEL,
    }
