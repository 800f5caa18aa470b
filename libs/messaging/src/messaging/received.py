"""A delivered event as a consumer's handler gets it, and the trace it is handled in."""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import structlog
from aiormq.abc import DeliveredMessage

from contracts.events import Envelope, EventPayload, payload_of, within


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    payload: EventPayload

    @contextlib.contextmanager
    def handling(self) -> Iterator[None]:
        """While this event is applied: the events written carry its correlation id and name it
        as their cause (contracts.envelope), and every log line names the event, its chain and
        its cause."""
        envelope = self.envelope
        fields = {"event_id": str(envelope.id), "correlation_id": envelope.correlation}
        if envelope.causation_id is not None:
            fields["causation_id"] = envelope.causation_id
        with within(envelope.caused_trace()), structlog.contextvars.bound_contextvars(**fields):
            yield


def parse(message: DeliveredMessage) -> Received:
    envelope = Envelope.model_validate_json(message.body)
    return Received(envelope=envelope, payload=payload_of(envelope))
