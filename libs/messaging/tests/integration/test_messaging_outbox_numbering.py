"""The outbox numbers each subject's events as it stages them (a sequences table), in the
writer's transaction: numbers follow the order of the events and of the commits, a rolled-back
transaction gives its numbers back, and a write gated on another (`staged(applied)`) that did not
apply stages nothing and takes no number."""

import asyncio
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from messaging_testing import EFFECTS, OUTBOX, SEQUENCES, job_created, status_changed
from sqlalchemy.ext.asyncio import AsyncEngine

from messaging.outbox import Outbox

pytestmark = pytest.mark.integration

NUMBERED = Outbox(OUTBOX, source="numbering-tests", sequences=SEQUENCES)


async def sequences(engine: AsyncEngine) -> list[tuple[str, int | None]]:
    """(subject, sequence) of every staged row, in outbox order."""
    async with engine.connect() as conn:
        bodies = (await conn.execute(sa.select(OUTBOX.c.body).order_by(OUTBOX.c.id))).scalars()
        return [(e["subject"], e["sequence"]) for e in map(json.loads, bodies)]


async def test_each_subject_is_numbered_from_one_in_the_order_of_its_events(
    engine: AsyncEngine,
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    async with engine.begin() as conn:
        staged = await NUMBERED.add(conn, job_created(a), status_changed(a), status_changed(b))
    async with engine.begin() as conn:
        await NUMBERED.add(conn, status_changed(b), status_changed(a))
    assert await sequences(engine) == [
        (str(a), 1),
        (str(a), 2),
        (str(b), 1),
        (str(b), 2),
        (str(a), 3),
    ]
    # What add() returns is what the relay will publish: the numbered bodies, in outbox order.
    assert [json.loads(r.body)["sequence"] for r in staged] == [1, 2, 1]
    assert [r.id for r in staged] == sorted(r.id for r in staged)


async def test_a_rolled_back_transaction_gives_its_numbers_back(engine: AsyncEngine) -> None:
    a = uuid.uuid4()
    async with engine.connect() as conn:
        transaction = await conn.begin()
        await NUMBERED.add(conn, status_changed(a), status_changed(a))
        await transaction.rollback()
    async with engine.begin() as conn:
        await NUMBERED.add(conn, status_changed(a))
    assert await sequences(engine) == [(str(a), 1)]


async def test_concurrent_writers_of_a_subject_are_numbered_in_commit_order(
    engine: AsyncEngine,
) -> None:
    a = uuid.uuid4()
    first_staged = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with engine.begin() as conn:
            await NUMBERED.add(conn, status_changed(a))
            first_staged.set()
            await release_first.wait()

    async def second() -> None:
        await first_staged.wait()
        async with engine.begin() as conn:
            await NUMBERED.add(conn, status_changed(a))

    one = asyncio.create_task(first())
    two = asyncio.create_task(second())
    await first_staged.wait()
    await asyncio.sleep(0.2)
    assert not two.done(), "the second writer waits for the first one's commit"
    release_first.set()
    await asyncio.gather(one, two)
    assert await sequences(engine) == [(str(a), 1), (str(a), 2)]


async def test_an_outbox_without_a_sequences_table_leaves_events_unnumbered(
    engine: AsyncEngine,
) -> None:
    a = uuid.uuid4()
    async with engine.begin() as conn:
        await Outbox(OUTBOX, source="numbering-tests").add(conn, status_changed(a))
    assert await sequences(engine) == [(str(a), None)]


async def test_a_gated_insert_whose_write_changed_nothing_takes_no_number(
    engine: AsyncEngine,
) -> None:
    a = uuid.uuid4()
    rows = NUMBERED.rows([status_changed(a)])

    async def gated(value: float) -> Any:
        # The gate: an UPDATE of the effects table that matches a row only when one has `value`.
        applied = (
            sa.update(EFFECTS)
            .where(EFFECTS.c.value == value)
            .values(value=EFFECTS.c.value)
            .returning(EFFECTS.c.id)
            .cte("applied")
        )
        staged = NUMBERED.staged(applied)
        async with engine.begin() as conn:
            return (
                await conn.execute(
                    sa.select(sa.func.count()).select_from(staged), NUMBERED.params(rows)
                )
            ).scalar_one()

    async with engine.begin() as conn:
        await conn.execute(sa.insert(EFFECTS).values(event_id=uuid.uuid4(), value=1.0))
    assert await gated(2.0) == 0
    async with engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(SEQUENCES))).scalar() == 0
    assert await gated(1.0) == 1
    assert await sequences(engine) == [(str(a), 1)]
