"""The statements on the jobs table, built once (a statement built per call costs its
construction and cache key every time), and the mapping between a row and a Job."""

import dataclasses
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from contracts.catalogue import HardwareClass
from contracts.enums import FailureClass, GPUProvider, JobPhase, JobStatus, JobType, WorkerPool
from job_api.adapters.event_statements import OUTBOX, insert_events_and_notify
from job_api.adapters.tables import jobs
from job_api.domain.job import Job

JOB_FIELDS = [f.name for f in dataclasses.fields(Job)]


def job_from_row(row: sa.Row[Any]) -> Job:
    return job_from_mapping(dict(row._mapping))


def job_from_mapping(values: dict[str, Any]) -> Job:
    values["job_type"] = JobType(values["job_type"])
    values["gpu_provider"] = GPUProvider(values["gpu_provider"])
    values["status"] = JobStatus(values["status"])
    values["phase"] = JobPhase(values["phase"])
    if values["failure_class"] is not None:
        values["failure_class"] = FailureClass(values["failure_class"])
    if values["worker_job_types"] is not None:
        values["worker_job_types"] = [JobType(t) for t in values["worker_job_types"]]
    values["worker_pool"] = WorkerPool(values["worker_pool"])
    values["hardware_class"] = HardwareClass(values["hardware_class"])
    return Job(**{k: values[k] for k in JOB_FIELDS})


def job_values(job: Job) -> dict[str, Any]:
    values = {f: getattr(job, f) for f in JOB_FIELDS}
    for key in (
        "job_type",
        "gpu_provider",
        "status",
        "phase",
        "failure_class",
        "worker_pool",
        "hardware_class",
    ):
        if values[key] is not None:
            values[key] = str(values[key])
    if values["worker_job_types"] is not None:
        values["worker_job_types"] = [str(t) for t in values["worker_job_types"]]
    return values


# The SET clause comes from the parameter names (every column but the key), so the statement is
# compiled once; building it with .values(literal values) cost a compilation-sized overhead per job.
UPDATE_JOB = sa.update(jobs).where(jobs.c.id == sa.bindparam("job_pk"))


def get_job(*, owned: bool, for_update: bool) -> sa.Select[Any]:
    stmt = sa.select(jobs).where(jobs.c.id == sa.bindparam("job_pk"))
    if owned:
        stmt = stmt.where(jobs.c.user_id == sa.bindparam("owner"))
    return stmt.with_for_update() if for_update else stmt


# Built once: a statement built per call costs its construction and cache key on every read.
GET_JOB = {
    (owned, for_update): get_job(owned=owned, for_update=for_update)
    for owned in (False, True)
    for for_update in (False, True)
}


# The version of a row: PostgreSQL's xmin, the transaction that wrote this version of it. Any
# UPDATE of the row, whatever columns it sets, gives it a new one.
def row_version() -> sa.Cast[str]:
    return sa.cast(sa.literal_column("xmin"), sa.Text)


def insert_job_with_events() -> sa.Select[Any]:
    """A new job, its outbox rows and its history rows (with their NOTIFY) in one statement, so
    creating a job costs one round trip inside its transaction instead of three. The job row and
    its history row are written by the same statement: the history's foreign key is checked at
    the end of the statement, when the job row exists."""
    new_job = (
        sa.insert(jobs)
        .values({c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in JOB_FIELDS})
        .returning(jobs.c.id, row_version().label("row_version"))
        .cte("new_job")
    )
    staged = OUTBOX.staged()
    notified = insert_events_and_notify().add_cte(new_job).subquery("notified")
    # One row: the new row's version, the outbox ids and bodies (numbered) in the order of the
    # events (the relay may publish them at once, see messaging.relay.OutboxRelay.publish_now),
    # and the NOTIFYs, run as a scalar subquery.
    return sa.select(
        sa.select(new_job.c.row_version).scalar_subquery().label("row_version"),
        sa.select(sa.func.array_agg(pg.aggregate_order_by(staged.c.id, staged.c.id)))
        .scalar_subquery()
        .label("outbox_ids"),
        sa.select(sa.func.array_agg(pg.aggregate_order_by(staged.c.body, staged.c.id)))
        .scalar_subquery()
        .label("outbox_bodies"),
        sa.select(sa.func.count()).select_from(notified).scalar_subquery().label("notified"),
    ).add_cte(staged)


def save_job_with_events() -> sa.Select[Any]:
    """A job loaded under lock saved (every column from `job_<column>` parameters), with its
    outbox rows (numbered by the outbox) and history rows (with their NOTIFY): one statement."""
    saved = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("job_pk"))
        .values(
            {c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in JOB_FIELDS if c != "id"}
        )
        .returning(jobs.c.id)
        .cte("saved")
    )
    return insert_events_and_notify().add_cte(saved, OUTBOX.staged())


SAVE_JOB_WITH_EVENTS = save_job_with_events()


def save_job_with_events_if_unchanged() -> sa.Select[Any]:
    """As save_job_with_events, but only if the job row is still the version that was read
    (`row_version`): a compare-and-set, so the save needs no lock held since the read and no
    transaction block. It returns the job's id when it applied and no row when it did not, and
    then stages nothing."""
    saved = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("job_pk"), row_version() == sa.bindparam("row_version"))
        .values(
            {c: sa.bindparam(f"job_{c}", type_=jobs.c[c].type) for c in JOB_FIELDS if c != "id"}
        )
        .returning(jobs.c.id)
        .cte("saved")
    )
    notified = insert_events_and_notify(saved).add_cte(OUTBOX.staged(saved)).subquery("notified")
    # The NOTIFYs run as a scalar subquery of the one row `saved` returns.
    return sa.select(
        saved.c.id,
        sa.select(sa.func.count()).select_from(notified).scalar_subquery().label("notified"),
    )


SAVE_JOB_WITH_EVENTS_IF_UNCHANGED = save_job_with_events_if_unchanged()

INSERT_JOB_WITH_EVENTS = insert_job_with_events()


def update_params(job: Job) -> dict[str, Any]:
    values = job_values(job)
    values["job_pk"] = values.pop("id")
    return values


# A read that also returns the row's version, for a save that checks it instead of holding a lock.
GET_JOB_VERSIONED = sa.select(jobs, row_version().label("row_version")).where(
    jobs.c.id == sa.bindparam("job_pk")
)
