"""Correlation and causation ids on the envelope: copied from the current trace, optional on the
wire (messages written before they existed still parse)."""

import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from pydantic import ValidationError

from contracts.enums import CancelReason
from contracts.events import (
    Envelope,
    JobCancelRequested,
    current_trace,
    payload_of,
    traced,
    within,
)


def _payload() -> JobCancelRequested:
    return JobCancelRequested(job_id=uuid4(), attempt=1, reason=CancelReason.USER)


def test_wrap_copies_the_current_trace() -> None:
    with traced("req-1", "req-1"):
        envelope = Envelope.wrap(_payload(), source="job-api")
    assert (envelope.correlation_id, envelope.causation_id) == ("req-1", "req-1")
    assert current_trace() is None


def test_outside_any_trace_an_event_starts_its_own_chain() -> None:
    envelope = Envelope.wrap(_payload(), source="job-api")
    assert envelope.correlation_id == str(envelope.id)
    assert envelope.causation_id is None


def test_handling_an_event_keeps_the_chain_and_names_the_event_as_cause() -> None:
    with traced("req-2", "req-2"):
        first = Envelope.wrap(_payload(), source="job-api")
    with within(first.caused_trace()):
        second = Envelope.wrap(_payload(), source="job-api")
    assert second.correlation_id == "req-2"
    assert second.causation_id == str(first.id)


def test_a_message_without_trace_ids_parses_and_starts_its_own_chain() -> None:
    body = Envelope.wrap(_payload(), source="job-api").model_dump(mode="json")
    del body["correlation_id"], body["causation_id"]
    old = Envelope.model_validate_json(json.dumps(body))
    assert old.correlation_id is None
    assert old.causation_id is None
    assert old.correlation == str(old.id)
    assert old.caused_trace().causation_id == str(old.id)
    assert isinstance(payload_of(old), JobCancelRequested)


def test_a_trace_id_that_could_break_a_log_line_is_refused() -> None:
    with pytest.raises(ValidationError):
        Envelope(
            type="job.cancel_requested",
            source="x",
            time=datetime.now(UTC),
            correlation_id="a\nb",
            data={},
        )
