"""The Worker aggregate: one enrolled credential, in a pool, and what its heartbeats say.

A worker belongs to the shared pool (run by the operator) or to one user's private pool (their
own Colab or box). Its credential is a token only the worker holds; job-api keeps the sha256 of
it, which is also the key of the signatures the worker puts on its broker messages. A revoked
worker authenticates nothing.
"""

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from uuid import UUID

from contracts.catalogue import HardwareClass
from contracts.credentials import token_hash, verify
from contracts.enums import GPUProvider, JobType
from contracts.events import WorkerHeartbeat
from contracts.routing import SHARED_POOL
from contracts.rpc import ClaimJob

WorkerState = Literal["idle", "busy", "offline", "revoked"]
# A heartbeat dated further from job-api's clock than this is not believed (a replay, or a clock
# so wrong that its leases would be nonsense too).
HEARTBEAT_SKEW = timedelta(minutes=2)


@dataclass
class Worker:
    id: UUID
    name: str
    pool: str
    owner_id: str | None
    created_by: str
    token_hash: str
    created_at: datetime
    broker_user: str | None = None
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None
    heartbeat_at: datetime | None = None
    state: Literal["idle", "busy", "stopping"] | None = None
    current_job_id: UUID | None = None
    provider: GPUProvider | None = None
    job_types: list[JobType] | None = field(default=None)
    hardware: str | None = None
    # Its largest GPU's memory (GB) as its heartbeats say; None: no GPU (or it never said).
    gpu_memory_gb: int | None = None
    version: str | None = None

    @property
    def key(self) -> bytes:
        """The signing key of its messages: the token's sha256."""
        return bytes.fromhex(self.token_hash)

    @property
    def is_shared(self) -> bool:
        return self.pool == SHARED_POOL

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def holds_token(self, token: str) -> bool:
        return not self.revoked and hmac.compare_digest(token_hash(token), self.token_hash)

    def signed_claim(self, claim: ClaimJob) -> bool:
        return (
            not self.revoked
            and claim.worker_id == self.id.hex
            and verify(self.key, claim.signing_parts(), claim.signature)
        )

    def signed_heartbeat(self, beat: WorkerHeartbeat) -> bool:
        return (
            not self.revoked
            and beat.worker_id == self.id.hex
            and verify(self.key, beat.signing_parts(), beat.signature)
        )

    def visible_to(self, user_id: str, *, admin: bool) -> bool:
        """Admins see every worker; a user sees the shared pool and their own private pool."""
        return admin or self.is_shared or self.owner_id == user_id

    def manageable_by(self, user_id: str, *, admin: bool) -> bool:
        """Who may revoke it: admins, and the owner of a private worker."""
        return admin or (not self.is_shared and self.owner_id == user_id)

    def record_heartbeat(self, beat: WorkerHeartbeat, *, now: datetime) -> bool:
        """Apply a (verified) heartbeat; an older one than the last applied, or one dated too far
        from now, changes nothing. Returns whether it was applied."""
        if abs(beat.sent_at - now) > HEARTBEAT_SKEW:
            return False
        if self.heartbeat_at is not None and beat.sent_at <= self.heartbeat_at:
            return False
        self.heartbeat_at = beat.sent_at
        self.last_seen_at = now
        self.state = beat.state
        self.current_job_id = beat.job_id if beat.state == "busy" else None
        self.provider = beat.provider
        self.job_types = sorted(set(beat.job_types))
        self.hardware = beat.hardware
        self.gpu_memory_gb = beat.gpu_memory_gb
        self.version = beat.version
        return True

    def seen(self, *, now: datetime, busy_with: UUID | None = None) -> None:
        """A request or a claim from it: it is alive (and busy when it holds a job)."""
        self.last_seen_at = now
        if busy_with is not None:
            self.state = "busy"
            self.current_job_id = busy_with

    def status(self, *, now: datetime, online: timedelta) -> WorkerState:
        if self.revoked:
            return "revoked"
        if (
            self.last_seen_at is None
            or now - self.last_seen_at > online
            or self.state == "stopping"
        ):
            return "offline"
        return "busy" if self.state == "busy" else "idle"

    def serves(self, job_type: JobType, provider: GPUProvider) -> bool:
        """What its last heartbeat said it takes; a worker that never sent one (the brief's HTTP
        worker) takes whatever its pool offers."""
        if self.job_types is not None and job_type not in self.job_types:
            return False
        return not self.is_shared or self.provider is None or self.provider is provider

    def satisfies(self, hardware_class: HardwareClass) -> bool:
        """Whether the hardware its heartbeats advertise runs jobs of `hardware_class`. A worker
        that never sent one (the brief's HTTP worker) is taken at its word: it takes any."""
        if self.heartbeat_at is None:
            return True
        return hardware_class.satisfied_by(self.gpu_memory_gb)

    def revoke(self, *, now: datetime) -> None:
        if self.revoked_at is None:
            self.revoked_at = now
            self.state = None
            self.current_job_id = None
