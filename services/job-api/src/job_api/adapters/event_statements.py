"""The statements that stage a write's side effects: history rows (each job they touch woken by a
NOTIFY) and outbox rows (numbered by messaging's Outbox), from one array parameter per column, so
each is compiled and prepared once whatever the number of rows. Job writes (jobs.py, fast_path.py) embed them as CTEs, so a job
saved with its events is one round trip."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from job_api.adapters.tables import JOB_EVENTS_CHANNEL, job_events, outbox, outbox_sequences
from messaging.outbox import Outbox
from servicekit.db import json_text

# The `source` of every event job-api publishes, and its inbox's consumer name.
SOURCE = "job-api"


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


# job-api's outbox: each job's events numbered as they are staged (messaging.outbox).
OUTBOX = Outbox(outbox, source=SOURCE, sequences=outbox_sequences)


# Outbox rows and history rows (with their NOTIFY) in one statement.
STAGE_EVENTS = insert_events_and_notify().add_cte(OUTBOX.staged())


def history_params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        "job_ids": [r["job_id"] for r in rows],
        "user_ids": [r["user_id"] for r in rows],
        "attempts": [r["attempt"] for r in rows],
        "kinds": [r["kind"] for r in rows],
        "data": [json_text(r["data"]) for r in rows],
        "channel": JOB_EVENTS_CHANNEL,
    }
