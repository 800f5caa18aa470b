"""The service layer against an in-memory unit of work: which events each command publishes, and
what it refuses. The fake stores copies, so a change a handler does not save is not kept."""

import copy
import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import pytest

from contracts.catalogue import Catalogue, HardwareClass
from contracts.credentials import WorkerToken, new_token, token_hash
from contracts.enums import (
    CancelReason,
    FailureClass,
    GPUProvider,
    JobPhase,
    JobStatus,
    JobType,
    ModelStore,
    WorkerPool,
)
from contracts.events import (
    DatasetDeleted,
    DatasetValidated,
    Envelope,
    EventPayload,
    JobCancelRequested,
    JobClaimed,
    JobCreated,
    JobFailed,
    JobProgress,
    JobRequeued,
    JobStatusChanged,
    ModelCompleted,
    ModelPushed,
)
from contracts.routing import SHARED_POOL, dataset_ref, pool_key
from contracts.rpc import ClaimJob, ClaimRefusal
from job_api.adapters.datasets import KnownDataset
from job_api.adapters.job_queries import JobFilter, PendingGroup
from job_api.domain.errors import (
    IllegalTransition,
    InsufficientHardware,
    InvalidJob,
    JobNotFound,
)
from job_api.domain.job import Job, hash_claim_secret
from job_api.domain.worker import Worker
from job_api.service_layer import dispatch, jobs
from job_api.service_layer import workers as workers_service
from job_api.service_layer.jobs import HyperparameterError, SubmitJob
from job_api.service_layer.unit_of_work import Policy
from job_api.service_layer.worker_http import WorkerUpdate, update_job
from messaging.received import Received

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
P = TypeVar("P", bound=EventPayload)
POLICY = Policy(catalogue=Catalogue(include_offline=True), data_ticket_secret="s" * 32)


async def apply_events(
    uow: Any, payloads: Sequence[EventPayload], policy: Policy, *, now: datetime
) -> Any:
    """The consumer's call: each payload as an event received from the broker."""
    batch = [Received(Envelope.wrap(p, source="test"), p) for p in payloads]
    return await dispatch.apply_worker_events(uow, batch, policy, now=now)


class FakeJobs:
    def __init__(self) -> None:
        self.rows: dict[UUID, Job] = {}

    async def add(self, job: Job) -> None:
        assert job.id not in self.rows
        self.rows[job.id] = copy.deepcopy(job)

    async def save(self, job: Job) -> None:
        assert job.id in self.rows
        self.rows[job.id] = copy.deepcopy(job)

    async def save_many(self, changed: Sequence[Job]) -> None:
        for job in changed:
            await self.save(job)

    async def get(
        self, job_id: UUID, *, user_id: str | None = None, for_update: bool = False
    ) -> Job | None:
        job = self.rows.get(job_id)
        if job is None or (user_id is not None and job.user_id != user_id):
            return None
        return copy.deepcopy(job)

    async def get_many_for_update(self, job_ids: Sequence[UUID]) -> dict[UUID, Job]:
        return {i: copy.deepcopy(self.rows[i]) for i in set(job_ids) if i in self.rows}

    async def search(
        self,
        flt: JobFilter,
        *,
        limit: int,
        after: tuple[datetime, UUID] | None = None,
        oldest_first: bool = False,
    ) -> list[Job]:
        found = [
            j
            for j in self.rows.values()
            if (flt.user_id is None or j.user_id == flt.user_id)
            and (flt.status is None or j.status is flt.status)
            and (flt.job_type is None or j.job_type is flt.job_type)
            and (flt.project_id is None or j.project_id == flt.project_id)
            and (flt.gpu_provider is None or j.gpu_provider is flt.gpu_provider)
        ]
        found.sort(key=lambda j: (j.created_at, j.id), reverse=not oldest_first)
        if after is not None and not oldest_first:
            found = [j for j in found if (j.created_at, j.id) < after]
        return [copy.deepcopy(j) for j in found[:limit]]

    async def expired_leases(self, now: datetime, *, limit: int = 100) -> list[Job]:
        expired = [
            j
            for j in self.rows.values()
            if j.status is JobStatus.RUNNING
            and j.lease_expires_at is not None
            and j.lease_expires_at < now
        ]
        return [copy.deepcopy(j) for j in expired[:limit]]

    async def pending_in_group(
        self, group: PendingGroup, hardware_class: HardwareClass | None = None
    ) -> list[Job]:
        return [
            copy.deepcopy(j)
            for j in self.rows.values()
            if j.status is JobStatus.PENDING
            and (j.worker_pool, j.owner_pool, j.job_type, j.gpu_provider) == group
            and hardware_class in (None, j.hardware_class)
        ]

    async def retries_due(self, now: datetime, *, limit: int = 100) -> list[Job]:
        return [copy.deepcopy(j) for j in self.rows.values() if j.offer_due(now)][:limit]

    async def undispatched_since(self, cutoff: datetime, *, limit: int = 100) -> list[Job]:
        return [
            copy.deepcopy(j)
            for j in self.rows.values()
            if j.status is JobStatus.PENDING
            and j.retry_at is None
            and j.dispatched_at is not None
            and j.dispatched_at < cutoff
        ][:limit]

    async def running_held_by(self, worker_id: str) -> list[Job]:
        return [
            copy.deepcopy(j)
            for j in self.rows.values()
            if j.status is JobStatus.RUNNING and j.worker_id == worker_id
        ]


class FakeWorkers:
    """Enrolled workers by id (the repository's interface the service layer uses)."""

    def __init__(self) -> None:
        self.rows: dict[UUID, Worker] = {}

    async def add(self, worker: Worker) -> None:
        self.rows[worker.id] = copy.deepcopy(worker)

    async def save(self, worker: Worker) -> None:
        self.rows[worker.id] = copy.deepcopy(worker)

    async def get(self, worker_id: UUID, *, for_update: bool = False) -> Worker | None:
        found = self.rows.get(worker_id)
        return copy.deepcopy(found) if found is not None else None

    async def authenticating(self, worker_id: UUID) -> Worker | None:
        return await self.get(worker_id)

    async def get_many_for_update(self, worker_ids: list[UUID]) -> dict[UUID, Worker]:
        return {i: copy.deepcopy(self.rows[i]) for i in set(worker_ids) if i in self.rows}

    async def has_private_pool(self, owner_id: str) -> bool:
        return any(w.owner_id == owner_id for w in self.rows.values())


class FakeEvents:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    async def add_many(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows.extend(rows)


class FakeDatasets:
    def __init__(self) -> None:
        self.rows: dict[UUID, KnownDataset] = {}

    async def get(self, dataset_id: UUID) -> KnownDataset | None:
        return self.rows.get(dataset_id)

    async def upsert(
        self,
        *,
        dataset_id: UUID,
        user_id: str,
        job_types: list[str],
        filename: str,
        rows: int,
        sha256: str | None = None,
        size_bytes: int | None = None,
        format: str | None = None,
        estimated_tokens: int | None = None,
    ) -> None:
        known = self.rows.get(dataset_id)
        if known is None or not known.deleted:
            self.rows[dataset_id] = KnownDataset(
                dataset_id,
                user_id,
                job_types,
                False,
                sha256,
                size_bytes,
                format,
                rows=rows,
                estimated_tokens=estimated_tokens,
            )

    async def mark_deleted(self, dataset_id: UUID, user_id: str) -> None:
        known = self.rows.get(dataset_id)
        job_types = known.job_types if known else []
        self.rows[dataset_id] = KnownDataset(dataset_id, user_id, job_types, True)


class FakeUnitOfWork:
    """Same interface as UnitOfWork; `published` collects what would go to the outbox."""

    def __init__(self) -> None:
        self.optimistic = False
        self.jobs = FakeJobs()
        self.events = FakeEvents()
        self.datasets = FakeDatasets()
        self.workers = FakeWorkers()
        self.published: list[EventPayload] = []
        # Enrolled workers by the name tests use ("w1", "w2", ...): their tokens.
        self.tokens: dict[str, WorkerToken] = {}

    def worker(self, name: str, *, owner: str | None = None) -> WorkerToken:
        """The token of the enrolled worker `name` (enrolled on first use)."""
        if name not in self.tokens:
            worker_id = uuid.uuid4()
            token = new_token(worker_id.hex)
            self.workers.rows[worker_id] = Worker(
                id=worker_id,
                name=name,
                pool=SHARED_POOL if owner is None else pool_key(owner),
                owner_id=owner,
                created_by="operator",
                token_hash=token_hash(token.token),
                created_at=NOW,
            )
            self.tokens[name] = token
        return self.tokens[name]

    async def add_job(
        self, job: Job, payloads: Sequence[EventPayload], history: Sequence[dict[str, Any]]
    ) -> None:
        await self.jobs.add(job)
        self.published.extend(payloads)
        await self.events.add_many(history)

    async def publish(
        self, *payloads: EventPayload, history: Sequence[dict[str, Any]] = ()
    ) -> None:
        self.published.extend(payloads)
        await self.events.add_many(history)

    async def save_and_publish(
        self, job: Job, *payloads: EventPayload, history: Sequence[dict[str, Any]] = ()
    ) -> bool:
        await self.jobs.save(job)
        await self.publish(*payloads, history=history)
        return True

    def of_type(self, kind: type[P]) -> list[P]:
        return [p for p in self.published if isinstance(p, kind)]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork()


def submit(**overrides: Any) -> SubmitJob:
    values: dict[str, Any] = {
        "user_id": "alice",
        "job_type": JobType.EMBEDDING,
        "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        "training_data_url": "https://data.example.com/train.csv",
        "output_model": "alice/custom-embedding",
        "gpu_provider": GPUProvider.LOCAL,
    }
    values.update(overrides)
    return SubmitJob(**values)


async def submitted(uow: FakeUnitOfWork, **overrides: Any) -> Job:
    job = await jobs.submit_job(uow, submit(**overrides), POLICY, now=NOW)
    uow.published.clear()
    uow.events.rows.clear()
    return job


def claim_cmd(job: Job, *, uow: "FakeUnitOfWork", worker: str = "w1", **overrides: Any) -> ClaimJob:
    """A claim signed by the enrolled worker named `worker`."""
    token = uow.worker(worker)
    values: dict[str, Any] = {
        "job_id": job.id,
        "worker_id": token.worker_id,
        "claim_id": uuid.uuid4(),
        "provider": GPUProvider.LOCAL,
        "job_types": [JobType.EMBEDDING],
        "expires_at": NOW + timedelta(seconds=10),
    }
    values.update(overrides)
    return ClaimJob(**values).signed(token.key)


# The claim secret each job's current attempt was granted (what the worker keeps).
SECRETS: dict[UUID, str] = {}


async def claimed(uow: FakeUnitOfWork, **overrides: Any) -> Job:
    job = await submitted(uow, **overrides)
    reply = await dispatch.claim_job(uow, claim_cmd(job, uow=uow), POLICY, now=NOW)
    assert reply.granted
    assert reply.job is not None
    SECRETS[job.id] = reply.job.claim_secret
    uow.published.clear()
    uow.events.rows.clear()
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    return stored


# --- submit ---------------------------------------------------------------------------------


async def test_submit_job_stores_a_pending_job_and_announces_it(uow: FakeUnitOfWork) -> None:
    job = await jobs.submit_job(uow, submit(), POLICY, now=NOW)

    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    assert stored.phase is JobPhase.QUEUED
    assert stored.attempt == 0
    assert stored.hyperparameters["epochs"] == 3
    assert "job_type" not in stored.hyperparameters

    created, changed = uow.published
    assert isinstance(created, JobCreated)
    assert created.job_id == job.id
    assert created.routing_key() == "job.created.embedding.local"
    assert isinstance(changed, JobStatusChanged)
    assert (changed.from_status, changed.to_status, changed.attempt) == (
        None,
        JobStatus.PENDING,
        0,
    )
    [row] = uow.events.rows
    assert row["kind"] == "status"
    assert row["data"]["reason"] == "created"


async def test_submit_without_a_worker_says_so(uow: FakeUnitOfWork) -> None:
    job = await jobs.submit_job(uow, submit(), POLICY, now=NOW, worker_present=False)
    assert job.phase is JobPhase.NO_WORKER
    assert job.failure_class is FailureClass.NO_WORKER


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"base_model": "mistralai/Mistral-7B-v0.1"}, "unknown_base_model"),
        ({"output_model": "noslash"}, "invalid_output_model"),
        ({"training_data_url": "http://data.example.com/x.csv"}, "invalid_training_data_url"),
        ({"training_data_url": dataset_ref("not-a-uuid")}, "invalid_dataset_ref"),
        ({"training_data_url": dataset_ref(uuid.uuid4())}, "dataset_not_ready"),
    ],
)
async def test_submit_refuses_bad_input_and_leaves_nothing(
    uow: FakeUnitOfWork, overrides: dict[str, Any], code: str
) -> None:
    with pytest.raises((InvalidJob, jobs.DatasetNotReady)) as caught:
        await jobs.submit_job(uow, submit(**overrides), POLICY, now=NOW)
    assert caught.value.code == code
    assert uow.jobs.rows == {}
    assert uow.published == []
    assert uow.events.rows == []


async def test_submit_refuses_bad_hyperparameters(uow: FakeUnitOfWork) -> None:
    with pytest.raises(HyperparameterError):
        await jobs.submit_job(uow, submit(hyperparameters={"lora_r": 8}), POLICY, now=NOW)
    assert uow.jobs.rows == {}


async def test_submit_resolves_a_known_dataset(uow: FakeUnitOfWork) -> None:
    dataset_id = uuid.uuid4()
    await uow.datasets.upsert(
        dataset_id=dataset_id, user_id="alice", job_types=["embedding"], filename="a.csv", rows=3
    )

    job = await jobs.submit_job(
        uow, submit(training_data_url=dataset_ref(dataset_id)), POLICY, now=NOW
    )

    assert job.dataset_id == dataset_id
    with pytest.raises(InvalidJob, match="classifier") as caught:
        await jobs.submit_job(
            uow,
            submit(
                job_type=JobType.CLASSIFIER,
                base_model="xlm-roberta-base",
                training_data_url=dataset_ref(dataset_id),
            ),
            POLICY,
            now=NOW,
        )
    assert caught.value.code == "dataset_incompatible"


# --- claim ----------------------------------------------------------------------------------


async def test_claim_grants_a_pending_job_once(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)

    reply = await dispatch.claim_job(uow, claim_cmd(job, uow=uow), POLICY, now=NOW)

    assert reply.granted
    assert reply.job is not None
    assert reply.job.attempt == 1
    assert reply.job.data.url == job.training_data_url
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.RUNNING
    assert [type(p) for p in uow.published] == [JobStatusChanged, JobClaimed]

    again = await dispatch.claim_job(uow, claim_cmd(job, uow=uow, worker="w2"), POLICY, now=NOW)

    assert not again.granted
    assert again.refusal is ClaimRefusal.NOT_PENDING
    assert len(uow.published) == 2


async def test_a_retried_claim_is_granted_again_without_a_new_attempt(
    uow: FakeUnitOfWork,
) -> None:
    job = await submitted(uow)
    cmd = claim_cmd(job, uow=uow)

    first = await dispatch.claim_job(uow, cmd, POLICY, now=NOW)
    retry = await dispatch.claim_job(uow, cmd, POLICY, now=NOW + timedelta(seconds=1))

    assert first.granted
    assert retry.granted
    assert first.job is not None
    assert retry.job is not None
    assert retry.job.attempt == first.job.attempt == 1
    assert len(uow.published) == 2  # announced once
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.attempt == 1
    # The first reply was lost: the retry's secret is the one that holds the job now.
    assert retry.job.claim_secret != first.job.claim_secret
    assert stored.claim_secret_hash == hash_claim_secret(retry.job.claim_secret)


async def test_the_claim_secret_is_random_and_only_its_hash_is_stored(
    uow: FakeUnitOfWork,
) -> None:
    a, b = await submitted(uow), await submitted(uow, output_model="alice/other")

    ra = await dispatch.claim_job(uow, claim_cmd(a, uow=uow), POLICY, now=NOW)
    rb = await dispatch.claim_job(uow, claim_cmd(b, uow=uow), POLICY, now=NOW)

    assert ra.job is not None
    assert rb.job is not None
    assert len(ra.job.claim_secret) >= 32
    assert ra.job.claim_secret != rb.job.claim_secret
    stored = await uow.jobs.get(a.id)
    assert stored is not None
    assert stored.claim_secret_hash == hash_claim_secret(ra.job.claim_secret)
    assert ra.job.claim_secret not in repr(stored)
    assert ra.job.claim_secret not in repr(ra)
    assert all(ra.job.claim_secret not in p.model_dump_json() for p in uow.published)


async def test_claim_refusals(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)

    wrong_provider = await dispatch.claim_job(
        uow, claim_cmd(job, uow=uow, provider=GPUProvider.COLAB), POLICY, now=NOW
    )
    wrong_type = await dispatch.claim_job(
        uow, claim_cmd(job, uow=uow, job_types=[JobType.LLM_LORA]), POLICY, now=NOW
    )
    expired = await dispatch.claim_job(
        uow, claim_cmd(job, uow=uow, expires_at=NOW - timedelta(seconds=1)), POLICY, now=NOW
    )
    missing = await dispatch.claim_job(
        uow, claim_cmd(job, uow=uow, job_id=uuid.uuid4()), POLICY, now=NOW
    )

    assert wrong_provider.refusal is ClaimRefusal.WRONG_ROUTE
    assert wrong_type.refusal is ClaimRefusal.WRONG_ROUTE
    assert expired.refusal is ClaimRefusal.EXPIRED
    assert missing.refusal is ClaimRefusal.NOT_FOUND
    assert not any(r.granted for r in (wrong_provider, wrong_type, expired, missing))
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    assert uow.published == []


async def test_claim_of_a_dataset_job_gets_a_ticket_url(uow: FakeUnitOfWork) -> None:
    dataset_id = uuid.uuid4()
    await uow.datasets.upsert(
        dataset_id=dataset_id,
        user_id="alice",
        job_types=["embedding"],
        filename="a.csv",
        rows=3,
        sha256="a" * 64,
        size_bytes=123,
        format="csv",
    )
    job = await submitted(uow, training_data_url=dataset_ref(dataset_id))

    reply = await dispatch.claim_job(uow, claim_cmd(job, uow=uow), POLICY, now=NOW)

    assert reply.job is not None
    # The ticket travels in a header, never in the URL (no log on the way may record it).
    assert reply.job.data.url == (
        f"http://localhost:8000/api/finetune/datasets/{dataset_id}/download"
    )
    assert reply.job.data.token is not None
    assert reply.job.data.token not in repr(reply.job)
    assert not reply.job.data.external
    assert reply.job.data.expires_at is not None
    assert (reply.job.data.sha256, reply.job.data.size_bytes, reply.job.data.format) == (
        "a" * 64,
        123,
        "csv",
    )


# --- worker events --------------------------------------------------------------------------


def progress(job: Job, attempt: int, value: float, secret: str | None = None) -> JobProgress:
    return JobProgress(
        job_id=job.id,
        attempt=attempt,
        worker_id="w1",
        claim_secret=secret or SECRETS.get(job.id, "no-secret"),
        progress=value,
    )


def pushed(job: Job, attempt: int, revision: str = "abc", **extra: Any) -> ModelPushed:
    return ModelPushed(
        job_id=job.id,
        attempt=attempt,
        worker_id="w1",
        claim_secret=extra.pop("secret", None) or SECRETS.get(job.id, "no-secret"),
        repo_id="alice/custom-embedding",
        revision=revision,
        store=ModelStore.LOCAL,
        uri=f"file:///models/alice/custom-embedding/{revision}",
        **extra,
    )


async def test_progress_from_the_current_attempt_is_applied(uow: FakeUnitOfWork) -> None:
    job = await claimed(uow)

    outcome = await apply_events(uow, [progress(job, 1, 30), progress(job, 1, 45)], POLICY, now=NOW)

    assert (outcome.applied, outcome.stale) == (2, 0)
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.progress == 45
    assert [r["data"]["progress"] for r in uow.events.rows] == [30, 45]
    assert uow.published == []


async def test_events_from_a_stale_attempt_are_ignored_and_the_worker_is_told_to_stop(
    uow: FakeUnitOfWork,
) -> None:
    job = await claimed(uow)
    await dispatch.expire_leases(uow, now=NOW + timedelta(hours=1))
    second = await dispatch.claim_job(uow, claim_cmd(job, uow=uow, worker="w2"), POLICY, now=NOW)
    assert second.job is not None
    assert second.job.attempt == 2
    uow.published.clear()
    uow.events.rows.clear()
    before = await uow.jobs.get(job.id)

    outcome = await apply_events(
        uow,
        [
            progress(job, 1, 90),
            pushed(job, 1, "zombie"),
        ],
        POLICY,
        now=NOW,
    )

    assert (outcome.applied, outcome.stale) == (0, 2)
    assert await uow.jobs.get(job.id) == before
    assert uow.events.rows == []
    [cancel] = uow.published
    assert isinstance(cancel, JobCancelRequested)
    assert (cancel.job_id, cancel.attempt, cancel.reason) == (
        job.id,
        1,
        CancelReason.STALE_ATTEMPT,
    )


async def test_model_completed_from_the_current_attempt_completes_the_job(
    uow: FakeUnitOfWork,
) -> None:
    job = await claimed(uow)

    outcome = await apply_events(
        uow,
        [
            pushed(
                job,
                1,
                "abc",
                metrics={"acc": 0.9},
                baseline_metrics={"acc": 0.5},
                data_stats={"rows": 3},
            )
        ],
        POLICY,
        now=NOW,
    )

    assert outcome.applied == 1
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert (stored.status, stored.progress, stored.output_revision) == (
        JobStatus.COMPLETED,
        100,
        "abc",
    )
    changed, completed = uow.published
    assert isinstance(changed, JobStatusChanged)
    assert changed.to_status is JobStatus.COMPLETED
    assert isinstance(completed, ModelCompleted)
    assert (completed.attempt, completed.repo_id, completed.revision) == (
        1,
        "alice/custom-embedding",
        "abc",
    )
    assert (completed.store, completed.uri) == (
        ModelStore.LOCAL,
        "file:///models/alice/custom-embedding/abc",
    )
    assert completed.metrics == {"acc": 0.9}
    assert completed.baseline_metrics == {"acc": 0.5}
    assert completed.data_stats == {"rows": 3}
    assert (completed.user_id, completed.output_model) == ("alice", "alice/custom-embedding")


async def test_a_report_with_a_wrong_claim_secret_is_ignored_and_its_sender_alone_told_to_stop(
    uow: FakeUnitOfWork,
) -> None:
    """Any worker credential could send a report naming the job and its attempt: without the
    attempt's secret it has no effect. The stop notice is addressed to the wrong secret's hash, so
    its sender stops and the attempt's holder (whose secret hashes otherwise) trains on."""
    job = await claimed(uow)
    before = await uow.jobs.get(job.id)

    outcome = await apply_events(
        uow,
        [progress(job, 1, 90, secret="guessed"), pushed(job, 1, "forged", secret="guessed")],
        POLICY,
        now=NOW,
    )

    assert (outcome.applied, outcome.stale) == (0, 2)
    assert await uow.jobs.get(job.id) == before
    assert uow.events.rows == []
    [notice] = uow.published  # one per sender, however many of its reports were refused
    assert isinstance(notice, JobCancelRequested)
    assert (notice.job_id, notice.attempt) == (job.id, 1)
    assert notice.reason is CancelReason.STALE_ATTEMPT
    assert notice.claim_secret_sha256 == hashlib.sha256(b"guessed").hexdigest()
    assert notice.claim_secret_sha256 != hashlib.sha256(SECRETS[job.id].encode()).hexdigest()


async def test_a_late_lower_progress_renews_the_lease_and_keeps_the_higher_value(
    uow: FakeUnitOfWork,
) -> None:
    job = await claimed(uow)
    later = NOW + timedelta(seconds=60)

    await apply_events(uow, [progress(job, 1, 50)], POLICY, now=NOW)
    outcome = await apply_events(uow, [progress(job, 1, 40)], POLICY, now=later)

    assert (outcome.applied, outcome.stale) == (1, 0)
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.progress == 50
    assert stored.lease_expires_at == later + POLICY.lease


async def test_a_retryable_job_failed_requeues(uow: FakeUnitOfWork) -> None:
    job = await claimed(uow)

    await apply_events(
        uow,
        [
            JobFailed(
                job_id=job.id,
                attempt=1,
                worker_id="w1",
                claim_secret=SECRETS[job.id],
                error="CUDA OOM",
                failure_class=FailureClass.INFRA_ERROR,
                retryable=True,
            )
        ],
        POLICY,
        now=NOW,
    )

    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    # Not offered again at once: after the back-off (POLICY.retry_backoff, 10 s for attempt 1).
    assert stored.retry_at == NOW + POLICY.retry_backoff
    assert {type(p) for p in uow.published} == {JobStatusChanged, JobCancelRequested}

    uow.published.clear()
    early = await dispatch.redispatch_stale(uow, POLICY, now=NOW + timedelta(seconds=9))
    assert early == []
    assert uow.of_type(JobRequeued) == []

    due = await dispatch.redispatch_stale(uow, POLICY, now=NOW + timedelta(seconds=10))
    assert [j.id for j in due] == [job.id]
    [offer] = uow.of_type(JobRequeued)
    assert (offer.reason, offer.routing_key()) == ("retry_backoff", "job.requeued.embedding.local")
    again = await uow.jobs.get(job.id)
    assert again is not None
    assert again.retry_at is None


async def test_the_back_off_doubles_per_attempt(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)
    waits = []
    for attempt in (1, 2):
        reply = await dispatch.claim_job(uow, claim_cmd(job, uow=uow), POLICY, now=NOW)
        assert reply.job is not None
        assert reply.job.attempt == attempt
        failed = JobFailed(
            job_id=job.id,
            attempt=attempt,
            worker_id="w1",
            claim_secret=reply.job.claim_secret,
            error="data-service answered 502",
            failure_class=FailureClass.INFRA_ERROR,
            retryable=True,
        )
        await apply_events(uow, [failed], POLICY, now=NOW)
        stored = await uow.jobs.get(job.id)
        assert stored is not None
        assert stored.retry_at is not None
        waits.append(stored.retry_at - NOW)
    assert waits == [POLICY.retry_backoff, POLICY.retry_backoff * 2]


async def test_events_for_unknown_jobs_are_counted_and_skipped(uow: FakeUnitOfWork) -> None:
    outcome = await apply_events(
        uow,
        [JobProgress(job_id=uuid.uuid4(), attempt=1, worker_id="w1", claim_secret="s", progress=5)],
        POLICY,
        now=NOW,
    )
    assert (outcome.applied, outcome.unknown_job) == (0, 1)
    assert uow.published == []


async def test_dataset_events_maintain_the_known_datasets(uow: FakeUnitOfWork) -> None:
    dataset_id = uuid.uuid4()
    validated = DatasetValidated(
        dataset_id=dataset_id,
        user_id="alice",
        filename="train.csv",
        format="csv",
        job_types=[JobType.EMBEDDING],
        rows=10,
        size_bytes=100,
        sha256="0" * 64,
    )

    await apply_events(uow, [validated], POLICY, now=NOW)
    known = await uow.datasets.get(dataset_id)
    assert known is not None
    assert (known.user_id, known.job_types, known.deleted) == ("alice", ["embedding"], False)

    await apply_events(
        uow,
        [DatasetDeleted(dataset_id=dataset_id, user_id="alice", reason="user")],
        POLICY,
        now=NOW,
    )
    known = await uow.datasets.get(dataset_id)
    assert known is not None
    assert known.deleted


async def test_a_dataset_reference_is_judged_by_the_projection_at_once(
    uow: FakeUnitOfWork,
) -> None:
    """Not in the projection (its event may be on its way) and another user's give the same
    409 `dataset_not_ready`; the caller's own dataset, once deleted, is 404 `dataset_not_found`."""
    dataset_id = uuid.uuid4()
    ref = dataset_ref(dataset_id)
    with pytest.raises(jobs.DatasetNotReady) as unknown:
        await jobs.submit_job(uow, submit(training_data_url=ref), POLICY, now=NOW)
    validated = DatasetValidated(
        dataset_id=dataset_id,
        user_id="alice",
        filename="train.csv",
        format="csv",
        job_types=[JobType.EMBEDDING],
        rows=10,
        size_bytes=100,
        sha256="0" * 64,
    )
    await apply_events(uow, [validated], POLICY, now=NOW)
    with pytest.raises(jobs.DatasetNotReady) as others:
        await jobs.submit_job(
            uow,
            submit(user_id="bob", training_data_url=ref, output_model="bob/model"),
            POLICY,
            now=NOW,
        )
    assert (str(others.value), others.value.status) == (str(unknown.value), 409)
    await apply_events(
        uow,
        [DatasetDeleted(dataset_id=dataset_id, user_id="alice", reason="user")],
        POLICY,
        now=NOW,
    )
    with pytest.raises(jobs.DatasetNotFound):
        await jobs.submit_job(uow, submit(training_data_url=ref), POLICY, now=NOW)
    assert uow.jobs.rows == {}


# --- watchdog, presence, cancel -------------------------------------------------------------


async def test_expire_leases_requeues_and_tells_the_old_worker_to_stop(
    uow: FakeUnitOfWork,
) -> None:
    job = await claimed(uow)

    assert await dispatch.expire_leases(uow, now=NOW + timedelta(seconds=10)) == []

    expired = await dispatch.expire_leases(uow, now=NOW + timedelta(hours=1))

    assert [j.id for j in expired] == [job.id]
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert (stored.status, stored.attempt) == (JobStatus.PENDING, 1)
    requeued = uow.of_type(JobRequeued)
    assert [(r.previous_attempt, r.reason) for r in requeued] == [(1, "lease_expired")]
    assert requeued[0].routing_key() == "job.requeued.embedding.local"
    cancels = uow.of_type(JobCancelRequested)
    assert [(c.attempt, c.reason) for c in cancels] == [(1, CancelReason.LEASE_EXPIRED)]
    assert [r["data"]["reason"] for r in uow.events.rows] == ["lease_expired"]


async def test_worker_presence_marks_pending_jobs_on_a_route(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)
    route = (WorkerPool.SHARED, None, JobType.EMBEDDING, GPUProvider.LOCAL)

    assert await dispatch.mark_worker_presence(uow, route, has_worker=False, now=NOW) == 1
    assert await dispatch.mark_worker_presence(uow, route, has_worker=False, now=NOW) == 0
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.phase is JobPhase.NO_WORKER
    assert uow.events.rows[0]["data"]["reason"] == "no_worker"


async def test_cancel_of_a_running_job_tells_the_worker(uow: FakeUnitOfWork) -> None:
    job = await claimed(uow)

    cancelled = await jobs.cancel_job(uow, job.id, user_id="alice", now=NOW)

    assert cancelled.status is JobStatus.CANCELLED
    changed, stop = uow.published
    assert isinstance(changed, JobStatusChanged)
    assert changed.to_status is JobStatus.CANCELLED
    assert isinstance(stop, JobCancelRequested)
    assert (stop.attempt, stop.reason) == (1, CancelReason.USER)
    assert stop.routing_key() == f"job.cancel_requested.{job.id}"


async def test_cancel_of_a_pending_job_publishes_no_stop(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)
    await jobs.cancel_job(uow, job.id, user_id="alice", now=NOW)
    assert [type(p) for p in uow.published] == [JobStatusChanged]


async def test_cancel_is_scoped_and_refuses_a_finished_job(uow: FakeUnitOfWork) -> None:
    job = await submitted(uow)

    with pytest.raises(JobNotFound):
        await jobs.cancel_job(uow, job.id, user_id="bob", now=NOW)
    await jobs.cancel_job(uow, job.id, user_id=None, now=NOW)  # an admin
    with pytest.raises(IllegalTransition):
        await jobs.cancel_job(uow, job.id, user_id="alice", now=NOW)


async def test_list_jobs_pages_newest_first(uow: FakeUnitOfWork) -> None:
    for i in range(5):
        await jobs.submit_job(uow, submit(), POLICY, now=NOW + timedelta(seconds=i))

    seen: list[datetime] = []
    after = None
    while True:
        page, after = await jobs.list_jobs(uow, JobFilter(user_id="alice"), limit=2, after=after)
        seen.extend(j.created_at for j in page)
        if after is None:
            break

    assert seen == sorted(seen, reverse=True)
    assert len(set(seen)) == 5


# --- identity and pools -----------------------------------------------------------------------


async def test_a_claim_not_signed_by_an_enrolled_credential_is_refused(
    uow: FakeUnitOfWork,
) -> None:
    job = await submitted(uow)
    good = claim_cmd(job, uow=uow)
    forged = [
        good.model_copy(update={"signature": "0" * 64}),
        good.model_copy(update={"worker_id": uuid.uuid4().hex}),
        good.model_copy(update={"worker_id": "not-hex"}),
        # Signed by w2, presented as w1: the signature is w2's key over w1's fields.
        ClaimJob.model_validate(good.model_dump()).signed(uow.worker("w2").key),
    ]
    for cmd in forged:
        reply = await dispatch.claim_job(uow, cmd, POLICY, now=NOW)
        assert reply.refusal is ClaimRefusal.UNAUTHORIZED
    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING


async def test_a_revoked_worker_claims_nothing_and_its_running_job_goes_back(
    uow: FakeUnitOfWork,
) -> None:
    job = await claimed(uow)
    worker_id = UUID(uow.worker("w1").worker_id)
    assert job.worker_id == worker_id.hex  # the holder is the credential, not a name it gave

    await workers_service.revoke(uow, worker_id, user_id="operator", admin=True, now=NOW)

    stored = await uow.jobs.get(job.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING
    [cancel] = uow.of_type(JobCancelRequested)
    assert (cancel.attempt, cancel.reason) == (1, CancelReason.WORKER_REVOKED)
    other = await submitted(uow)
    refused = await dispatch.claim_job(uow, claim_cmd(other, uow=uow), POLICY, now=NOW)
    assert refused.refusal is ClaimRefusal.UNAUTHORIZED


@pytest.mark.parametrize(
    ("target", "shared_may", "owners_may", "strangers_may"),
    [
        (WorkerPool.SHARED, True, False, False),
        (WorkerPool.PRIVATE, False, True, False),
        (WorkerPool.ANY, True, True, False),
    ],
)
async def test_a_job_is_granted_only_to_the_pools_it_targets(
    target: WorkerPool, shared_may: bool, owners_may: bool, strangers_may: bool
) -> None:
    for name, owner, allowed in (
        ("shared", None, shared_may),
        ("alices", "alice", owners_may),
        ("bobs", "bob", strangers_may),
    ):
        uow = FakeUnitOfWork()
        uow.worker(name, owner=owner)
        uow.worker("own", owner="alice")  # alice has a private pool: private jobs are accepted
        job = await submitted(uow, worker_pool=target)
        reply = await dispatch.claim_job(uow, claim_cmd(job, uow=uow, worker=name), POLICY, now=NOW)
        assert reply.granted is allowed, (target, name)
        if not allowed:
            assert reply.refusal is ClaimRefusal.WRONG_ROUTE


async def test_a_private_job_needs_a_private_pool(uow: FakeUnitOfWork) -> None:
    with pytest.raises(InvalidJob) as refused:
        await jobs.submit_job(uow, submit(worker_pool=WorkerPool.PRIVATE), POLICY, now=NOW)
    assert refused.value.code == "no_private_pool"
    assert uow.jobs.rows == {}


async def test_a_private_job_is_offered_to_its_owners_pool(uow: FakeUnitOfWork) -> None:
    uow.worker("mine", owner="alice")
    await jobs.submit_job(uow, submit(worker_pool=WorkerPool.PRIVATE), POLICY, now=NOW)
    [created] = uow.of_type(JobCreated)
    assert created.routing_key() == f"job.created.embedding.local.{pool_key('alice')}"


# --- hardware classes -----------------------------------------------------------------------

TINY_LLAMA = "ftd-local/tiny-llama"
LLAMA_7B = "meta-llama/Llama-2-7b-hf"


def lora(base_model: str) -> dict[str, Any]:
    return {
        "job_type": JobType.LLM_LORA,
        "base_model": base_model,
        "output_model": f"alice/lora-{uuid.uuid4().hex[:8]}",
    }


async def test_a_job_gets_its_base_models_hardware_class_and_routes_by_it(
    uow: FakeUnitOfWork,
) -> None:
    small = await jobs.submit_job(uow, submit(**lora(TINY_LLAMA)), POLICY, now=NOW)
    big = await jobs.submit_job(uow, submit(**lora(LLAMA_7B)), POLICY, now=NOW)

    assert small.hardware_class is HardwareClass.CPU
    assert big.hardware_class is HardwareClass.GPU24
    keys = {p.job_id: p.routing_key() for p in uow.of_type(JobCreated)}
    assert keys == {
        small.id: "job.created.llm_lora.local",
        big.id: "job.created.llm_lora.gpu24.local",
    }


async def test_a_claim_short_of_the_jobs_hardware_is_refused(uow: FakeUnitOfWork) -> None:
    big = await submitted(uow, **lora(LLAMA_7B))
    types = [JobType.LLM_LORA]

    on_a_cpu = await dispatch.claim_job(
        uow, claim_cmd(big, uow=uow, job_types=types), POLICY, now=NOW
    )
    on_a_t4 = await dispatch.claim_job(
        uow, claim_cmd(big, uow=uow, job_types=types, gpu_memory_gb=16), POLICY, now=NOW
    )

    for reply in (on_a_cpu, on_a_t4):
        assert not reply.granted
        assert reply.refusal is ClaimRefusal.INSUFFICIENT_HARDWARE
    assert on_a_cpu.message is not None
    assert "needs a GPU worker with ≥ 24 GB" in on_a_cpu.message
    assert "no GPU" in on_a_cpu.message
    assert uow.published == []

    on_an_l4 = await dispatch.claim_job(
        uow, claim_cmd(big, uow=uow, job_types=types, gpu_memory_gb=24), POLICY, now=NOW
    )
    assert on_an_l4.granted


async def test_a_cpu_claims_a_job_on_a_small_base(uow: FakeUnitOfWork) -> None:
    small = await submitted(uow, **lora(TINY_LLAMA))

    reply = await dispatch.claim_job(
        uow, claim_cmd(small, uow=uow, job_types=[JobType.LLM_LORA]), POLICY, now=NOW
    )

    assert reply.granted


def heard_from(worker: Worker, *, gpu_memory_gb: int | None) -> Worker:
    """`worker` after a heartbeat: online, idle, taking llm_lora on the local provider."""
    worker.heartbeat_at = worker.last_seen_at = NOW
    worker.state = "idle"
    worker.provider = GPUProvider.LOCAL
    worker.job_types = [JobType.LLM_LORA]
    worker.gpu_memory_gb = gpu_memory_gb
    return worker


async def test_an_http_claim_short_of_the_jobs_hardware_is_a_409(uow: FakeUnitOfWork) -> None:
    big = await submitted(uow, **lora(LLAMA_7B))
    uow.worker("cpu-box")
    (cpu,) = uow.workers.rows.values()
    heard_from(cpu, gpu_memory_gb=None)

    with pytest.raises(InsufficientHardware) as caught:
        await update_job(
            uow,
            big.id,
            WorkerUpdate(status=JobStatus.RUNNING),
            POLICY,
            now=NOW,
            holder=cpu.id.hex,
            pool=SHARED_POOL,
            enrolled=cpu,
        )

    assert (caught.value.code, caught.value.status) == ("insufficient_hardware", 409)
    stored = await uow.jobs.get(big.id)
    assert stored is not None
    assert stored.status is JobStatus.PENDING


async def test_the_waiting_notice_counts_only_workers_with_a_big_enough_gpu(
    uow: FakeUnitOfWork,
) -> None:
    uow.worker("cpu-box")
    (cpu,) = uow.workers.rows.values()
    online = [heard_from(cpu, gpu_memory_gb=None)]
    group = (WorkerPool.SHARED, None, JobType.LLM_LORA, GPUProvider.LOCAL)
    found = {
        c: workers_service.availability(
            online, group, now=NOW, online=timedelta(minutes=1), hardware_class=c
        )
        for c in (HardwareClass.CPU, HardwareClass.GPU24)
    }

    assert found[HardwareClass.CPU].reason == "queued"
    assert found[HardwareClass.GPU24].reason == "no_worker"
    notice = workers_service.waiting_notice(
        group,
        found[HardwareClass.GPU24],
        public_base_url="http://localhost:8000",
        hardware_class=HardwareClass.GPU24,
    )
    assert notice["reason"] == "no_worker"
    assert notice["needs"] == "needs a GPU worker with ≥ 24 GB"
    assert "needs a GPU worker with ≥ 24 GB" in notice["message"]
    assert "a CPU worker never takes it" in notice["message"]
    small = workers_service.waiting_notice(
        group,
        found[HardwareClass.CPU],
        public_base_url="http://localhost:8000",
        hardware_class=HardwareClass.CPU,
    )
    assert "needs" not in small

    # An L4 worker (24 GB) takes both; one that never sent a heartbeat is taken at its word.
    heard_from(cpu, gpu_memory_gb=24)
    assert (
        workers_service.availability(
            online, group, now=NOW, online=timedelta(minutes=1), hardware_class=HardwareClass.GPU24
        ).reason
        == "queued"
    )


async def test_worker_presence_marks_the_jobs_of_one_hardware_class(uow: FakeUnitOfWork) -> None:
    small = await submitted(uow, **lora(TINY_LLAMA))
    big = await submitted(uow, **lora(LLAMA_7B))
    route = (WorkerPool.SHARED, None, JobType.LLM_LORA, GPUProvider.LOCAL)

    marked = await dispatch.mark_worker_presence(
        uow, route, has_worker=False, now=NOW, hardware_class=HardwareClass.GPU24
    )

    assert marked == 1
    assert (await uow.jobs.get(big.id)).phase is JobPhase.NO_WORKER  # type: ignore[union-attr]
    assert (await uow.jobs.get(small.id)).phase is JobPhase.QUEUED  # type: ignore[union-attr]
