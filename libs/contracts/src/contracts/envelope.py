"""The CloudEvents-shaped envelope every event travels in, the base of every payload, and the
trace (correlation and causation ids) an envelope carries.

Tracing: the correlation id names the whole chain of work one request started (the HTTP request
id, `X-Request-Id`); it is copied into every message written while handling that request, and
into every message written while handling one of those, and so on. The causation id is the id of
the message that caused this one (the request id for the first). Whoever handles a request or a
message opens `traced(...)`; `Envelope.wrap` reads the current trace, so the code that writes
events (the outbox, the worker's reports) needs no parameter for it.

The typed payload of an envelope is contracts.events' `payload_of`, beside the table of types.
"""

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

# What a trace id may be: a request id as servicekit accepts it from a gateway, or a message id.
TRACE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


def trace_id_field(description: str) -> Any:
    return Field(default=None, pattern=TRACE_ID_PATTERN, description=description)


@dataclass(frozen=True)
class Trace:
    correlation_id: str
    causation_id: str | None = None


_TRACE: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("trace", default=None)


def current_trace() -> Trace | None:
    """The trace of the request or message being handled; None outside any."""
    return _TRACE.get()


TraceToken = contextvars.Token[Trace | None]


def set_trace(trace: Trace) -> TraceToken:
    """From now on messages written carry `trace`'s ids, until `reset_trace` with the token."""
    return _TRACE.set(trace)


def reset_trace(token: TraceToken) -> None:
    _TRACE.reset(token)


@contextlib.contextmanager
def within(trace: Trace) -> Iterator[Trace]:
    """Within the block, messages written carry `trace`'s ids."""
    token = set_trace(trace)
    try:
        yield trace
    finally:
        reset_trace(token)


def traced(
    correlation_id: str, causation_id: str | None = None
) -> "contextlib.AbstractContextManager[Trace]":
    """Within the block, messages written carry `correlation_id` and `causation_id`."""
    return within(Trace(correlation_id, causation_id))


class EventPayload(BaseModel):
    """Base of every event's `data`. Unknown fields are ignored so producers can add fields."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_type: ClassVar[str]
    data_version: ClassVar[int] = 1
    # A job.created that reaches no work queue would wait forever: the relay must not drop it.
    must_route: ClassVar[bool] = False

    def routing_key(self) -> str:
        return self.event_type

    def subject(self) -> str | None:
        job_id = getattr(self, "job_id", None)
        return str(job_id) if job_id is not None else None


class Envelope(BaseModel):
    """CloudEvents 1.0 attribute names; `data` is the typed payload as JSON."""

    model_config = ConfigDict(extra="ignore")

    specversion: Literal["1.0"] = "1.0"
    id: UUID = Field(
        default_factory=uuid4, description="Unique per event: the consumers' dedupe key."
    )
    type: str = Field(description="Event type, e.g. `job.created`.")
    source: str = Field(description="Producer, e.g. `job-api` or `gpu-worker/<worker id>`.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = Field(default=None, description="The job id where there is one.")
    datacontenttype: Literal["application/json"] = "application/json"
    dataversion: int = Field(default=1, description="Version of the payload schema.")
    sequence: int | None = Field(
        default=None,
        ge=1,
        description=(
            "CloudEvents `sequence` extension: increases with each event a producer publishes "
            "about one subject, so a consumer can drop a stale status. Null when not tracked."
        ),
    )
    correlation_id: str | None = trace_id_field(
        "Extension: the id of the chain of work this event belongs to, the same in every message "
        "it caused: the HTTP request id (`X-Request-Id`) that started it, or the id of the first "
        "message when no request did. Absent in messages written before it existed."
    )
    causation_id: str | None = trace_id_field(
        "Extension: the id of the message (or the HTTP request id) whose handling wrote this "
        "event. Absent for an event nothing else caused (a timer's)."
    )
    data: dict[str, Any] = Field(description="The payload; its schema is given by `type`.")

    @classmethod
    def wrap(
        cls,
        payload: EventPayload,
        *,
        source: str,
        event_id: UUID | None = None,
        sequence: int | None = None,
        trace: Trace | None = None,
    ) -> "Envelope":
        """`trace` defaults to the current one (`traced`); outside any, the event starts a chain
        of its own (its correlation id is its id)."""
        event_id = event_id or uuid4()
        trace = trace or current_trace() or Trace(str(event_id))
        return cls(
            id=event_id,
            type=payload.event_type,
            source=source,
            subject=payload.subject(),
            dataversion=payload.data_version,
            sequence=sequence,
            correlation_id=trace.correlation_id,
            causation_id=trace.causation_id,
            data=payload.model_dump(mode="json"),
        )

    @property
    def correlation(self) -> str:
        """The chain this event belongs to; an event written before correlation ids existed
        starts its own."""
        return self.correlation_id or str(self.id)

    def caused_trace(self) -> Trace:
        """The trace of what handling this event writes: the same chain, caused by this event."""
        return Trace(self.correlation, str(self.id))
