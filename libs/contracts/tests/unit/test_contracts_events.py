"""Events: the envelope round-trips every payload, tolerates new fields and routes by its key."""

from datetime import UTC, datetime
from uuid import UUID

import pytest
from pydantic import ValidationError

from contracts.enums import (
    CancelReason,
    FailureClass,
    GPUProvider,
    JobPhase,
    JobStatus,
    JobType,
    ModelStore,
)
from contracts.events import (
    EVENT_TYPES,
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
    ModelDeleted,
    ModelDeployed,
    ModelPushed,
    WorkerHeartbeat,
    payload_of,
)

JOB_ID = UUID("00000000-0000-4000-8000-000000000001")
DATASET_ID = UUID("00000000-0000-4000-8000-000000000002")
MODEL_ID = UUID("00000000-0000-4000-8000-000000000003")
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "s3cret-claim-value"

SAMPLES: dict[str, EventPayload] = {
    p.event_type: p
    for p in (
        JobCreated(
            job_id=JOB_ID,
            user_id="u1",
            project_id="p1",
            job_type=JobType.EMBEDDING,
            gpu_provider=GPUProvider.LOCAL,
            base_model="sentence-transformers/all-MiniLM-L6-v2",
            output_model="u1/minilm-ft",
            dataset_id=DATASET_ID,
            hyperparameters={"epochs": 1},
            created_at=NOW,
        ),
        JobRequeued(
            job_id=JOB_ID,
            job_type=JobType.LLM_LORA,
            gpu_provider=GPUProvider.RUNPOD,
            previous_attempt=1,
            reason="lease_expired",
        ),
        JobClaimed(job_id=JOB_ID, user_id="u1", attempt=1, worker_id="w1", lease_expires_at=NOW),
        JobProgress(
            job_id=JOB_ID,
            attempt=1,
            worker_id="w1",
            claim_secret=SECRET,
            progress=42.5,
            phase=JobPhase.TRAINING,
            step=10,
            total_steps=100,
            epoch=0.5,
            loss=0.25,
            metrics={"lr": 2e-5},
            log_lines=["step 10"],
            eta_seconds=30,
        ),
        JobFailed(
            job_id=JOB_ID,
            attempt=1,
            worker_id="w1",
            claim_secret=SECRET,
            error="CUDA out of memory",
            failure_class=FailureClass.INFRA_ERROR,
            retryable=True,
        ),
        ModelPushed(
            job_id=JOB_ID,
            attempt=1,
            worker_id="w1",
            claim_secret=SECRET,
            repo_id="u1/minilm-ft",
            revision="abc",
            store=ModelStore.LOCAL,
            uri="file:///models/u1/minilm-ft/abc",
            metrics={"eval_loss": 0.1},
            baseline_metrics={"eval_loss": 0.3},
            data_stats={"rows": 100},
        ),
        WorkerHeartbeat(
            worker_id="0" * 32,
            sent_at=NOW,
            state="busy",
            job_id=JOB_ID,
            provider=GPUProvider.LOCAL,
            job_types=[JobType.EMBEDDING],
            hardware="cpu",
        ).signed(b"k" * 32),
        ModelCompleted(
            job_id=JOB_ID,
            user_id="u1",
            attempt=1,
            job_type=JobType.EMBEDDING,
            base_model="sentence-transformers/all-MiniLM-L6-v2",
            output_model="u1/minilm-ft",
            repo_id="u1/minilm-ft",
            revision="abc",
            store=ModelStore.HUB,
            uri="hf://u1/minilm-ft@abc",
            metrics={"eval_loss": 0.1},
            baseline_metrics={"eval_loss": 0.3},
            hyperparameters={"epochs": 1},
            dataset_id=DATASET_ID,
            completed_at=NOW,
        ),
        JobCancelRequested(job_id=JOB_ID, attempt=2, reason=CancelReason.USER),
        JobStatusChanged(
            job_id=JOB_ID,
            user_id="u1",
            from_status=JobStatus.RUNNING,
            to_status=JobStatus.FAILED,
            attempt=1,
            failure_class=FailureClass.USER_ERROR,
            error="bad column",
        ),
        ModelDeployed(
            model_id=MODEL_ID,
            job_id=JOB_ID,
            user_id="u1",
            repo_id="u1/minilm-ft",
            job_type=JobType.EMBEDDING,
            deployed=True,
            deployed_at=NOW,
        ),
        ModelDeleted(model_id=MODEL_ID, user_id="u1", repo_id="u1/minilm-ft", version=2),
        DatasetValidated(
            dataset_id=DATASET_ID,
            user_id="u1",
            filename="pairs.jsonl",
            format="jsonl",
            job_types=[JobType.EMBEDDING],
            rows=100,
            size_bytes=2048,
            sha256="0" * 64,
        ),
        DatasetDeleted(dataset_id=DATASET_ID, user_id="u1", reason="user"),
    )
}


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_envelope_round_trips_the_payload(event_type: str) -> None:
    payload = SAMPLES[event_type]
    envelope = Envelope.wrap(payload, source="test")

    received = Envelope.model_validate_json(envelope.model_dump_json())

    assert received.type == event_type
    assert received.id == envelope.id
    assert received.dataversion == payload.data_version
    assert payload_of(received) == payload
    assert type(payload_of(received)) is EVENT_TYPES[event_type]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_subject_is_the_job_or_dataset_id(event_type: str) -> None:
    payload = SAMPLES[event_type]
    if event_type == "worker.heartbeat":
        assert Envelope.wrap(payload, source="test").subject is None
        return
    subject_field = (
        "dataset_id"
        if event_type.startswith("dataset.")
        else "model_id"
        if event_type == "model.deleted"
        else "job_id"
    )

    assert Envelope.wrap(payload, source="test").subject == str(getattr(payload, subject_field))


def test_wrap_keeps_a_given_event_id() -> None:
    event_id = UUID("00000000-0000-4000-8000-0000000000ff")

    envelope = Envelope.wrap(SAMPLES["job.claimed"], source="job-api", event_id=event_id)

    assert envelope.id == event_id


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_unknown_fields_in_data_are_ignored(event_type: str) -> None:
    payload = SAMPLES[event_type]
    envelope = Envelope.wrap(payload, source="test")
    newer = envelope.model_copy(update={"data": {**envelope.data, "added_in_v2": {"x": 1}}})

    assert payload_of(newer) == payload


def test_unknown_envelope_attributes_are_ignored() -> None:
    raw = Envelope.wrap(SAMPLES["job.progress"], source="w1").model_dump(mode="json")

    envelope = Envelope.model_validate({**raw, "traceparent": "00-abc-def-01"})

    assert payload_of(envelope) == SAMPLES["job.progress"]


def test_unknown_type_raises_key_error() -> None:
    envelope = Envelope(type="job.exploded", source="test", data={"job_id": str(JOB_ID)})

    with pytest.raises(KeyError):
        payload_of(envelope)


@pytest.mark.parametrize(
    ("event_type", "change"),
    [
        ("job.progress", {"progress": 150}),
        ("job.progress", {"attempt": 0}),
        ("job.progress", {"log_lines": ["x"] * 51}),
        ("job.failed", {"failure_class": "cancelled"}),
        ("job.created", {"job_type": "diffusion"}),
        ("job.created", {"job_id": "not-a-uuid"}),
        ("dataset.validated", {"format": "xlsx"}),
    ],
)
def test_invalid_data_raises_validation_error(event_type: str, change: dict[str, object]) -> None:
    envelope = Envelope.wrap(SAMPLES[event_type], source="test")
    broken = envelope.model_copy(update={"data": {**envelope.data, **change}})

    with pytest.raises(ValidationError):
        payload_of(broken)


def test_missing_required_field_raises_validation_error() -> None:
    envelope = Envelope.wrap(SAMPLES["model.completed"], source="test")
    data = {k: v for k, v in envelope.data.items() if k != "repo_id"}

    with pytest.raises(ValidationError):
        payload_of(envelope.model_copy(update={"data": data}))


def test_work_routing_keys_carry_type_and_provider() -> None:
    assert SAMPLES["job.created"].routing_key() == "job.created.embedding.local"
    assert SAMPLES["job.requeued"].routing_key() == "job.requeued.llm_lora.runpod"


def test_cancel_routing_key_carries_the_job_id() -> None:
    assert SAMPLES["job.cancel_requested"].routing_key() == f"job.cancel_requested.{JOB_ID}"


@pytest.mark.parametrize(
    "event_type",
    sorted(set(EVENT_TYPES) - {"job.created", "job.requeued", "job.cancel_requested"}),
)
def test_other_routing_keys_are_the_event_type(event_type: str) -> None:
    assert SAMPLES[event_type].routing_key() == event_type


def test_work_events_and_the_events_another_service_depends_on_must_route() -> None:
    """Dropping one of these loses work (a job nobody is offered) or knowledge another service
    has no other way to get (an upload job-api never hears of, a model the registry never lists);
    the relay keeps them until a queue takes them. Everything else may go unheard."""
    must_route = {t for t, cls in EVENT_TYPES.items() if cls.must_route}

    assert must_route == {"job.created", "job.requeued", "dataset.validated", "model.completed"}


@pytest.mark.parametrize("event_type", ["job.progress", "job.failed", "model.pushed"])
def test_worker_reports_require_the_claim_secret_and_never_print_it(event_type: str) -> None:
    payload = SAMPLES[event_type]
    data = {k: v for k, v in payload.model_dump(mode="json").items() if k != "claim_secret"}

    with pytest.raises(ValidationError):
        type(payload).model_validate(data)
    assert SECRET not in repr(payload)
    assert SECRET not in str(payload)


def test_envelope_carries_a_sequence_when_given() -> None:
    envelope = Envelope.wrap(SAMPLES["job.status_changed"], source="job-api", sequence=7)

    received = Envelope.model_validate_json(envelope.model_dump_json())

    assert received.sequence == 7
    assert Envelope.wrap(SAMPLES["job.claimed"], source="job-api").sequence is None
