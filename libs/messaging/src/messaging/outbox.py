"""Transactional outbox: an event is written in the same transaction as the state change it
announces, and a relay (messaging.relay) publishes it afterwards with publisher confirms.

Numbering: an outbox given a sequences table (`outbox_sequences_table`) numbers the events of
each subject (a job) as it stages them: the statement that inserts the rows takes the subject's
next numbers from that table (an upsert, whose row lock orders concurrent writers of a subject
until their commit) and writes each into its envelope's `sequence`, so a consumer can drop a
status it receives after a newer one. Writers never number events themselves.

Rows travel as one array parameter per column, so the insert is compiled and prepared once
whatever their number; `Outbox.staged` gives it as a CTE for a writer that stages its events in
the statement that makes its change (one round trip).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.events import Envelope, EventPayload
from messaging.relay import OutboxRelay, RelayStats

__all__ = [
    "Outbox",
    "OutboxRelay",
    "RelayStats",
    "StagedRow",
    "notify_trigger_sql",
    "outbox_row",
    "outbox_sequences_table",
    "outbox_table",
]


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", pg.UUID(as_uuid=True), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("routing_key", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("must_route", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column(
            "available_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def notify_trigger_sql(schema: str, channel: str) -> tuple[list[str], list[str]]:
    """(upgrade, downgrade) DDL for the trigger that wakes the relay after an outbox insert."""
    fn = f"{schema}.outbox_notify"
    upgrade = [
        f"""CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$""",
        f"""CREATE TRIGGER outbox_notify AFTER INSERT ON {schema}.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION {fn}()""",
    ]
    downgrade = [
        f"DROP TRIGGER IF EXISTS outbox_notify ON {schema}.outbox",
        f"DROP FUNCTION IF EXISTS {fn}()",
    ]
    return upgrade, downgrade


def outbox_sequences_table(metadata: sa.MetaData) -> sa.Table:
    """The last `sequence` given to each subject's events (see the module's docstring)."""
    return sa.Table(
        "outbox_sequences",
        metadata,
        sa.Column("subject", sa.Text, primary_key=True),
        sa.Column("last", sa.BigInteger, nullable=False),
    )


def outbox_row(payload: EventPayload, *, source: str) -> dict[str, Any]:
    """The outbox columns of one event (its envelope unnumbered) and its `subject`."""
    envelope = Envelope.wrap(payload, source=source)
    return {
        "event_id": envelope.id,
        "event_type": envelope.type,
        "routing_key": payload.routing_key(),
        "body": envelope.model_dump_json().encode(),
        "must_route": payload.must_route,
        "subject": envelope.subject,
    }


@dataclass(frozen=True)
class StagedRow:
    """A row as staged: its id and its body (numbered), what the relay publishes."""

    id: int
    body: bytes


def _only_if(rows: sa.Select[Any], applied: sa.CTE | None) -> sa.Select[Any]:
    return rows if applied is None else rows.where(sa.exists(sa.select(applied.c.id)))


class Outbox:
    """Stages events in the outbox inside the caller's transaction (never commits); with
    `sequences`, numbers each subject's events as it stages them."""

    def __init__(self, table: sa.Table, *, source: str, sequences: sa.Table | None = None) -> None:
        self.table = table
        self.source = source
        self.sequences = sequences
        staged = self.staged()
        self._add: Any = sa.select(sa.func.array_agg(staged.c.id), sa.func.array_agg(staged.c.body))

    def rows(self, payloads: Sequence[EventPayload]) -> list[dict[str, Any]]:
        return [outbox_row(p, source=self.source) for p in payloads]

    @staticmethod
    def params(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The parameters of `staged()` for `rows` (`rows()`)."""
        return {
            "outbox_event_ids": [r["event_id"] for r in rows],
            "outbox_event_types": [r["event_type"] for r in rows],
            "outbox_routing_keys": [r["routing_key"] for r in rows],
            "outbox_bodies": [r["body"] for r in rows],
            "outbox_must_route": [r["must_route"] for r in rows],
            "outbox_subjects": [r["subject"] for r in rows],
        }

    def staged(self, applied: sa.CTE | None = None) -> sa.CTE:
        """The insert of the rows in `params()`, as a CTE named `staged` returning each row's `id`
        and `body`; with `applied` (a write's CTE), only if that write changed a row. Outbox ids
        follow the order of the rows (the relay's order)."""
        src = (
            sa.func.unnest(
                sa.cast(sa.bindparam("outbox_event_ids"), pg.ARRAY(pg.UUID(as_uuid=True))),
                sa.cast(sa.bindparam("outbox_event_types"), pg.ARRAY(sa.Text)),
                sa.cast(sa.bindparam("outbox_routing_keys"), pg.ARRAY(sa.Text)),
                sa.cast(sa.bindparam("outbox_bodies"), pg.ARRAY(sa.LargeBinary)),
                sa.cast(sa.bindparam("outbox_must_route"), pg.ARRAY(sa.Boolean)),
                sa.cast(sa.bindparam("outbox_subjects"), pg.ARRAY(sa.Text)),
            )
            .table_valued(
                "event_id",
                "event_type",
                "routing_key",
                "body",
                "must_route",
                "subject",
                with_ordinality="n",
            )
            .render_derived()
        )
        columns = ["event_id", "event_type", "routing_key", "body", "must_route"]
        if self.sequences is None:
            rows = sa.select(*(src.c[c] for c in columns)).order_by(src.c.n)
        else:
            rows = self._numbered(src, applied)
        t = self.table
        return (
            pg.insert(t)
            .from_select(columns, _only_if(rows, applied))
            .returning(t.c.id, t.c.body)
            .cte("staged")
        )

    def _numbered(self, src: Any, applied: sa.CTE | None) -> sa.Select[Any]:
        """The rows, each with a subject numbered: the subject's counter is raised by its number
        of rows (in subject order, so two writers never lock counters in opposite orders), and
        the k-th row of the subject gets last - count + k."""
        seq = self.sequences
        assert seq is not None
        counts = _only_if(
            sa.select(src.c.subject, sa.func.count().label("c"))
            .where(src.c.subject.is_not(None))
            .group_by(src.c.subject)
            .order_by(src.c.subject),
            applied,
        )
        upsert = pg.insert(seq).from_select(["subject", "last"], counts)
        taken = (
            upsert.on_conflict_do_update(
                index_elements=[seq.c.subject], set_={"last": seq.c.last + upsert.excluded.last}
            )
            .returning(seq.c.subject, seq.c.last)
            .cte("taken")
        )
        part = {"partition_by": src.c.subject}
        ranked = sa.select(
            src,
            sa.func.row_number().over(order_by=src.c.n, **part).label("k"),
            sa.func.count().over(**part).label("c"),
        ).subquery("ranked")
        number = taken.c.last - ranked.c.c + ranked.c.k
        numbered_body = sa.func.convert_to(
            sa.cast(
                sa.cast(
                    sa.func.convert_from(ranked.c.body, sa.literal_column("'UTF8'")), pg.JSONB
                ).op("||")(sa.func.jsonb_build_object(sa.literal_column("'sequence'"), number)),
                sa.Text,
            ),
            sa.literal_column("'UTF8'"),
        )
        return (
            sa.select(
                ranked.c.event_id,
                ranked.c.event_type,
                ranked.c.routing_key,
                sa.case((taken.c.last.is_(None), ranked.c.body), else_=numbered_body),
                ranked.c.must_route,
            )
            .select_from(ranked.outerjoin(taken, taken.c.subject == ranked.c.subject))
            .order_by(ranked.c.n)
        )

    async def add(self, conn: AsyncConnection, *payloads: EventPayload) -> list[StagedRow]:
        """Stage `payloads` (one statement); returns the rows as staged, in order."""
        if not payloads:
            return []
        ids, bodies = (await conn.execute(self._add, self.params(self.rows(payloads)))).one()
        return sorted(
            (StagedRow(int(i), bytes(b)) for i, b in zip(ids, bodies, strict=True)),
            key=lambda r: r.id,
        )
