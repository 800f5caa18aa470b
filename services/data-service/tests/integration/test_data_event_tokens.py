"""dataset.validated carries the validation report's token estimate (job-api's time estimates)."""

import uuid

import pytest
import sqlalchemy as sa
from data_service_testing import classifier_csv
from sqlalchemy.ext.asyncio import AsyncEngine

from contracts.events import DatasetValidated, Envelope, EventPayload
from data_service.adapters.tables import outbox
from data_service.service_layer import datasets
from data_service.service_layer.unit_of_work import UnitOfWork
from data_service.service_layer.validation.pipeline import validate_bytes

pytestmark = pytest.mark.integration


async def test_the_validated_event_carries_the_estimated_tokens(data_db: AsyncEngine) -> None:
    body = classifier_csv(40)
    report = validate_bytes(body)
    tokens = report.stats["estimated_tokens"]
    assert tokens > 0
    dataset_id = uuid.uuid4()
    async with data_db.connect() as conn, conn.begin() as tx:
        # Read inside the transaction: the relay cannot have taken the row yet.
        await datasets.record_upload(
            UnitOfWork(conn),
            dataset_id=dataset_id,
            user_id="alice",
            filename="train.csv",
            storage_key=str(dataset_id),
            report=report,
            size_bytes=len(body),
            sha256="0" * 64,
        )
        [raw] = (
            await conn.execute(
                sa.select(outbox.c.body).where(outbox.c.event_type == "dataset.validated")
            )
        ).scalars()
        await tx.rollback()
    envelope = Envelope.model_validate_json(raw)
    payload: EventPayload = DatasetValidated.model_validate(envelope.data)
    assert isinstance(payload, DatasetValidated)
    assert payload.dataset_id == dataset_id
    assert payload.estimated_tokens == tokens


def test_an_older_producer_without_tokens_is_still_valid() -> None:
    payload = DatasetValidated.model_validate(
        {
            "dataset_id": str(uuid.uuid4()),
            "user_id": "alice",
            "filename": "train.csv",
            "format": "csv",
            "job_types": ["classifier"],
            "rows": 3,
            "size_bytes": 10,
            "sha256": "0" * 64,
        }
    )
    assert payload.estimated_tokens is None
