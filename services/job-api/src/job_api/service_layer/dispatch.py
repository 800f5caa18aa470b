"""The dispatch protocol: claims, the consumer of worker reports and data-service events, the
lease watchdog and worker presence. Every path goes through the aggregate, so the state machine and
the fencing hold whichever way a worker talks to us (broker or the brief's HTTP API)."""

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import structlog

from contracts.catalogue import HardwareClass
from contracts.events import (
    DatasetDeleted,
    DatasetValidated,
    EventPayload,
    JobFailed,
    JobProgress,
    ModelPushed,
    WorkerHeartbeat,
    current_trace,
)
from contracts.rpc import ClaimJob, ClaimRefusal, ClaimReply, DataTicket, JobSpec
from contracts.store import owner_key
from job_api.adapters.job_queries import PendingGroup
from job_api.domain.errors import InsufficientHardware
from job_api.domain.job import Credential, Job, PushedModel, hash_claim_secret
from job_api.domain.worker import Worker
from job_api.service_layer.announce import announce, requeued_event, status_row
from job_api.service_layer.namespaces import linked_hub_token
from job_api.service_layer.reports import Completion, Failure, Heartbeat, Outcome, Report, Reports
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from job_api.service_layer.workers import record_heartbeats
from messaging.received import Received
from servicekit.handlers import EventHandlers
from servicekit.tickets import mint_data_ticket

log = structlog.get_logger(__name__)


async def data_ticket(uow: UnitOfWork, job: Job, policy: Policy) -> DataTicket:
    """The data ticket of a claim: minted when a claim is granted, never otherwise."""
    if job.dataset_id is None:
        # A URL the user gave: the worker fetches it only through its SSRF guard.
        return DataTicket(
            url=job.training_data_url, external=True, max_bytes=policy.max_external_data_bytes
        )
    token, expires_at = mint_data_ticket(
        policy.data_ticket_secret,
        dataset_id=job.dataset_id,
        job_id=job.id,
        attempt=job.attempt,
        ttl=policy.data_ticket_ttl,
    )
    # The ticket travels in a header (DataTicket.token), never in the URL: no access or error
    # log on the way (the gateway's included) can record it.
    url = f"{policy.public_base_url}/api/finetune/datasets/{job.dataset_id}/download"
    known = await uow.datasets.get(job.dataset_id)
    return DataTicket(
        url=url,
        token=token,
        expires_at=expires_at,
        sha256=known.sha256 if known else None,
        size_bytes=known.size_bytes if known else None,
        format=known.format if known and known.format in ("csv", "jsonl") else None,
    )


async def job_spec(uow: UnitOfWork, job: Job, policy: Policy, claim_secret: str) -> JobSpec:
    assert job.lease_expires_at is not None
    trace = current_trace()
    return JobSpec(
        job_id=job.id,
        attempt=job.attempt,
        claim_secret=claim_secret,
        job_type=job.job_type,
        base_model=job.base_model,
        output_model=job.output_model,
        hyperparameters=job.hyperparameters,
        data=await data_ticket(uow, job, policy),
        # The owner's own Hub token, when linked: the push goes where they may write.
        hub_token=await linked_hub_token(uow, job.user_id, policy.token_cipher),
        owner_key=owner_key(job.user_id),
        lease_seconds=policy.lease.total_seconds(),
        lease_expires_at=job.lease_expires_at,
        # The claim's trace (entrypoints.workers): the attempt's reports carry it on.
        correlation_id=trace.correlation_id if trace else None,
        causation_id=trace.causation_id if trace else None,
    )


def _refuse(refusal: ClaimRefusal, message: str) -> ClaimReply:
    return ClaimReply(granted=False, refusal=refusal, message=message)


async def claimant(uow: UnitOfWork, cmd: ClaimJob) -> Worker | None:
    """The enrolled worker a claim is signed by; None for an unknown or revoked worker or a
    signature that does not verify."""
    try:
        worker_id = UUID(hex=cmd.worker_id)
    except ValueError:
        return None
    worker = await uow.workers.authenticating(worker_id)
    return worker if worker is not None and worker.signed_claim(cmd) else None


async def claim_job(
    uow: UnitOfWork, cmd: ClaimJob, policy: Policy, *, now: datetime
) -> ClaimReply | None:
    """The reply to a claim. On an optimistic unit (no lock, one checked save), None when the
    claim must be decided under the row lock: a retried claim id (its secret is rotated by a
    plain save), or a job changed since it was read. Nothing was written then."""
    worker = await claimant(uow, cmd)
    if worker is None:
        return _refuse(
            ClaimRefusal.UNAUTHORIZED,
            "The claim is not signed by an enrolled worker's credential (unknown or revoked).",
        )
    if cmd.expires_at < now:
        return _refuse(ClaimRefusal.EXPIRED, "The claim request expired before it was read.")
    job = await uow.jobs.get(cmd.job_id, for_update=True)
    if job is None:
        return _refuse(ClaimRefusal.NOT_FOUND, f"Job {cmd.job_id} does not exist.")
    if job.job_type not in cmd.job_types or not job.routable_to(worker.pool, cmd.provider):
        return _refuse(
            ClaimRefusal.WRONG_ROUTE,
            f"Job {job.id} is not offered to this worker's pool, job types and provider.",
        )
    if not job.hardware_class.satisfied_by(cmd.gpu_memory_gb):
        # Only a worker consuming queues beyond its hardware gets here: it would hold the job
        # for days (a 7B on a CPU) or fail out of memory.
        return _refuse(
            ClaimRefusal.INSUFFICIENT_HARDWARE,
            str(InsufficientHardware(job.id, job.hardware_class.need(), cmd.gpu_memory_gb)),
        )
    holder = worker.id.hex
    # A random secret per grant; only its hash is stored. A retried claim (its reply was lost)
    # gets a new one: the worker never saw the first.
    secret = secrets.token_urlsafe(32)
    if job.is_same_claim(holder, cmd.claim_id):
        if uow.optimistic:
            return None
        job.rotate_claim_secret(hash_claim_secret(secret))
        await uow.jobs.save(job)
        return ClaimReply(granted=True, job=await job_spec(uow, job, policy, secret))
    if not job.is_claimable():
        return _refuse(ClaimRefusal.NOT_PENDING, f"Job {job.id} is {job.status}.")
    transition = job.claim(
        worker_id=holder,
        claim_id=cmd.claim_id,
        now=now,
        lease=policy.lease,
        secret_hash=hash_claim_secret(secret),
        serves=cmd.job_types,
    )
    if not await announce(uow, job, transition, now=now, save=True):
        return None
    return ClaimReply(granted=True, job=await job_spec(uow, job, policy, secret))


# ------------------------------------------------------------ broker reports -> one Report each


@dataclass(frozen=True)
class Incoming:
    """One event of a batch, read into the batch's reports with the event it came from."""

    received: Received
    reports: list[tuple[Received, Report]]

    def add(self, report: Report) -> None:
        self.reports.append((self.received, report))


# The reports a worker sends, each turned into the Report the aggregate applies.
REPORT_OF: EventHandlers[Incoming, EventPayload] = EventHandlers()


def _credential(p: JobProgress | JobFailed | ModelPushed) -> Credential:
    return Credential(
        worker_id=p.worker_id, attempt=p.attempt, secret_hash=hash_claim_secret(p.claim_secret)
    )


@REPORT_OF.on(JobProgress)
async def heartbeat_of(incoming: Incoming, p: JobProgress) -> None:
    incoming.add(
        Heartbeat(
            job_id=p.job_id,
            who=_credential(p),
            progress=p.report(),
            history=p.model_dump(
                mode="json", exclude={"job_id", "attempt", "claim_secret"}, exclude_none=True
            ),
        )
    )


@REPORT_OF.on(JobFailed)
async def failure_of(incoming: Incoming, p: JobFailed) -> None:
    incoming.add(
        Failure(
            job_id=p.job_id,
            who=_credential(p),
            error=p.error,
            failure_class=p.failure_class,
            retryable=p.retryable,
        )
    )


@REPORT_OF.on(ModelPushed)
async def completion_of(incoming: Incoming, p: ModelPushed) -> None:
    incoming.add(
        Completion(
            job_id=p.job_id,
            who=_credential(p),
            model=PushedModel(
                repo_id=p.repo_id,
                revision=p.revision,
                store=p.store,
                uri=p.uri,
                metrics=p.metrics,
                baseline_metrics=p.baseline_metrics,
                data_stats=p.data_stats,
                created_repo=p.created_repo,
            ),
            logs_url=p.logs_url,
        )
    )


# data-service's events: job-api's projection of the datasets.
PROJECTIONS: EventHandlers[UnitOfWork, EventPayload] = EventHandlers()


@PROJECTIONS.on(DatasetValidated)
async def on_dataset_validated(uow: UnitOfWork, p: DatasetValidated) -> None:
    await uow.datasets.upsert(
        dataset_id=p.dataset_id,
        user_id=p.user_id,
        job_types=[str(t) for t in p.job_types],
        filename=p.filename,
        rows=p.rows,
        sha256=p.sha256,
        size_bytes=p.size_bytes,
        format=p.format,
        estimated_tokens=p.estimated_tokens,
    )


@PROJECTIONS.on(DatasetDeleted)
async def on_dataset_deleted(uow: UnitOfWork, p: DatasetDeleted) -> None:
    await uow.datasets.mark_deleted(p.dataset_id, p.user_id)


async def apply_worker_events(
    uow: UnitOfWork, batch: Sequence[Received], policy: Policy, *, now: datetime
) -> Outcome:
    """Apply a batch of worker reports, worker heartbeats and data-service events in one
    transaction; each event is applied within its trace (what it causes carries its
    correlation id)."""
    reports: list[tuple[Received, Report]] = []
    for received in batch:
        await REPORT_OF.dispatch(Incoming(received, reports), received.payload)
    jobs = await uow.jobs.get_many_for_update([r.job_id for _, r in reports])
    applying = Reports(uow, policy, now=now)
    beats = [r.payload for r in batch if isinstance(r.payload, WorkerHeartbeat)]
    await record_heartbeats(uow, beats, now=now)
    await PROJECTIONS.apply_each(uow, batch)
    for received, report in reports:
        with received.handling():
            job = jobs.get(report.job_id)
            if job is None:
                applying.outcome.unknown_job += 1
                log.warning("worker_report.unknown_job", event_type=received.envelope.type)
                continue
            await applying.apply_from_broker(job, report)
    return await applying.flush()


async def expire_leases(uow: UnitOfWork, *, now: datetime, limit: int = 100) -> list[Job]:
    expired = await uow.jobs.expired_leases(now, limit=limit)
    for job in expired:
        transition = job.expire_lease(now=now)
        await announce(uow, job, transition, now=now, save=True)
        log.warning(
            "job.lease_expired",
            job_id=str(job.id),
            attempt=transition.attempt,
            to_status=str(job.status),
        )
    return expired


async def redispatch_stale(
    uow: UnitOfWork, policy: Policy, *, now: datetime, limit: int = 100
) -> list[Job]:
    """Offer again the pending jobs whose back-off is over, and those whose last offer is old
    (its message may have been dead-lettered or purged)."""
    due = await uow.jobs.retries_due(now, limit=limit)
    stale = await uow.jobs.undispatched_since(now - policy.redispatch_after, limit=limit)
    for job, reason in [*((j, "retry_backoff") for j in due), *((j, "redispatch") for j in stale)]:
        job.redispatch(now=now)
        await uow.jobs.save(job)
        await uow.publish(requeued_event(job, previous_attempt=job.attempt, reason=reason))
        log.info("job.redispatched", job_id=str(job.id), attempt=job.attempt, reason=reason)
    return [*due, *stale]


async def mark_worker_presence(
    uow: UnitOfWork,
    group: PendingGroup,
    *,
    has_worker: bool,
    now: datetime,
    hardware_class: HardwareClass | None = None,
) -> int:
    """Set the phase of `group`'s pending jobs (of `hardware_class`; None: of any class)."""
    changed = 0
    for job in await uow.jobs.pending_in_group(group, hardware_class):
        if job.mark_worker_presence(has_worker=has_worker, now=now):
            await uow.jobs.save(job)
            reason = "worker_available" if has_worker else "no_worker"
            await uow.events.add_many([status_row(job, None, reason=reason)])
            changed += 1
    return changed
