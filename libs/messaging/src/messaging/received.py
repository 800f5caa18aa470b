"""A delivered event as a consumer's handler gets it, and the trace it is handled in."""

from dataclasses import dataclass

import structlog
from aiormq.abc import DeliveredMessage

from contracts.events import Envelope, EventPayload, payload_of, reset_trace, set_trace


@dataclass(frozen=True)
class Received:
    envelope: Envelope
    payload: EventPayload

    def handling(self) -> "Handling":
        """While this event is applied: the events written carry its correlation id and name it
        as their cause (contracts.envelope), and every log line names the event, its chain and
        its cause."""
        return Handling(self.envelope)


class Handling:
    """`Received.handling()`'s block. A plain class rather than two nested generator context
    managers: a consumer enters one per event (a progress report each), so it is kept cheap."""

    __slots__ = ("_envelope", "_log_tokens", "_trace_token")

    def __init__(self, envelope: Envelope) -> None:
        self._envelope = envelope

    def __enter__(self) -> None:
        envelope = self._envelope
        self._trace_token = set_trace(envelope.caused_trace())
        if envelope.causation_id is None:
            self._log_tokens = structlog.contextvars.bind_contextvars(
                event_id=str(envelope.id), correlation_id=envelope.correlation
            )
        else:
            self._log_tokens = structlog.contextvars.bind_contextvars(
                event_id=str(envelope.id),
                correlation_id=envelope.correlation,
                causation_id=envelope.causation_id,
            )

    def __exit__(self, *exc: object) -> None:
        structlog.contextvars.reset_contextvars(**self._log_tokens)
        reset_trace(self._trace_token)


def parse(message: DeliveredMessage) -> Received:
    envelope = Envelope.model_validate_json(message.body)
    return Received(envelope=envelope, payload=payload_of(envelope))
