"""Deliveries: one event (or ping) for one webhook, sent until the receiver takes it, it refuses
it for good, or the attempts run out.

- 2xx: delivered.
- 408, 429, 5xx, a timeout or a connection error: tried again after the back-off (exponential:
  5 s, 30 s, 2 min, 10 min, 1 h, 3 h, 6 h by default, each with jitter), up to `max_attempts`.
- any other status (4xx, and 3xx: redirects are never followed), or a URL the guard refuses at
  connect time: failed for good.
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

# Seconds to wait after attempt 1, 2, ...; the number of attempts is one more than its length.
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (5, 30, 120, 600, 3600, 3 * 3600, 6 * 3600)
# Each delay is multiplied by a factor drawn from [1 - JITTER, 1 + JITTER], so receivers that
# failed together are not all called again at the same moment.
JITTER = 0.2
# A server's Retry-After is honoured up to this long.
MAX_RETRY_AFTER_SECONDS = 3600.0
RETRYABLE_STATUSES = frozenset({408, 429})


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS

    @property
    def max_attempts(self) -> int:
        return len(self.delays) + 1

    def delay_after(
        self, attempt: int, *, jitter: float = 0.0, retry_after: float | None = None
    ) -> timedelta | None:
        """How long to wait after attempt number `attempt` (1-based) failed in a way worth
        retrying; None when it was the last. `jitter` in [-1, 1] scales the jitter band;
        a server's `retry_after` (seconds) lengthens the wait, never shortens it."""
        if attempt >= self.max_attempts:
            return None
        base = self.delays[attempt - 1] * (1 + JITTER * max(-1.0, min(1.0, jitter)))
        if retry_after is not None:
            base = max(base, min(retry_after, MAX_RETRY_AFTER_SECONDS))
        return timedelta(seconds=base)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: an HTTP status, or an error (no status) and whether trying
    again may help."""

    status_code: int | None
    error: str | None
    retryable: bool
    duration_ms: int
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def outcome_of_status(
    status_code: int, duration_ms: int, retry_after: float | None = None
) -> Outcome:
    if 200 <= status_code < 300:
        return Outcome(status_code, None, False, duration_ms)
    retryable = status_code in RETRYABLE_STATUSES or status_code >= 500
    if 300 <= status_code < 400:
        error = f"HTTP {status_code}: redirects are not followed"
    else:
        error = f"HTTP {status_code}"
    return Outcome(status_code, error, retryable, duration_ms, retry_after if retryable else None)


@dataclass(frozen=True)
class Attempt:
    number: int
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime
    next_retry_at: datetime | None


@dataclass
class Delivery:
    id: UUID
    webhook_id: UUID
    user_id: str
    event_id: UUID
    event_type: str
    body: bytes
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None = None
    last_status_code: int | None = None
    last_error: str | None = None
    # Whether it is tried again after a failure (a ping is tried once).
    retries: bool = True

    @property
    def message_id(self) -> str:
        """Standard Webhooks' `webhook-id`: the same on every attempt of this delivery, so a
        receiver can tell a retry from a new event."""
        return f"msg_{self.id.hex}"

    def record(
        self, outcome: Outcome, *, now: datetime, schedule: RetrySchedule, jitter: float
    ) -> Attempt:
        """Apply one attempt's outcome; the attempt as the delivery log shows it."""
        self.attempts += 1
        self.last_status_code = outcome.status_code
        self.last_error = outcome.error
        next_retry_at = None
        if outcome.delivered:
            self.status = DeliveryStatus.DELIVERED
            self.delivered_at = now
            self.next_attempt_at = None
        else:
            delay = (
                schedule.delay_after(self.attempts, jitter=jitter, retry_after=outcome.retry_after)
                if outcome.retryable and self.retries
                else None
            )
            if delay is None:
                self.status = DeliveryStatus.FAILED
                self.next_attempt_at = None
            else:
                next_retry_at = now + delay
                self.next_attempt_at = next_retry_at
        return Attempt(
            number=self.attempts,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
            attempted_at=now,
            next_retry_at=next_retry_at,
        )
