"""What the service layer needs of the world, as protocols: the broker link, the data source, the
model store, the checkpoint store, how blocking work runs, and the display. The adapters
(gpu_worker.adapters, workerlink's BrokerLink) satisfy them structurally; the composition root
(gpu_worker.entrypoints.toolkit) wires them, tests wire the same ones around fake trainers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from uuid import UUID

from contracts.enums import JobType, ModelStore
from contracts.events import JobCancelRequested, JobFailed, JobProgress, ModelPushed
from contracts.rpc import ClaimReply, DataTicket, JobSpec
from contracts.worker_reports import Progress
from gpu_worker.domain.outcome import Outcome
from gpu_worker.domain.training import DataFormat, Reporter, TrainRequest, TrainResult

T = TypeVar("T")
WorkerState = Literal["idle", "busy", "stopping"]


# --- the broker link ------------------------------------------------------------------------
class Delivery(Protocol):
    """The broker message an offer came in."""

    async def nack(self, *, requeue: bool = True) -> None: ...


class Offer(Protocol):
    """A job offered off a work queue, not yet acknowledged."""

    @property
    def job_id(self) -> UUID: ...
    @property
    def message(self) -> Delivery: ...


OfferT = TypeVar("OfferT", bound=Offer)


class ReportSink(Protocol):
    """Where an attempt's reports go (the link's outbox, which outlives a dropped connection)."""

    def send(self, payload: JobProgress | JobFailed | ModelPushed) -> None: ...


class Closable(Protocol):
    def close(self) -> Awaitable[object]: ...


class Link(Protocol[OfferT]):
    """The worker's side of the broker protocol (workerlink.link.BrokerLink)."""

    @property
    def job_types(self) -> Sequence[JobType]: ...
    @property
    def revoked(self) -> asyncio.Event:
        """Set once the platform revoked this worker's credential."""
        ...

    @property
    def reports(self) -> ReportSink | None: ...
    def set_state(self, state: WorkerState, job_id: UUID | None = None) -> None: ...
    async def resume_offers(self) -> None: ...
    async def pause_offers(self) -> None: ...
    async def next_offer(self) -> OfferT: ...
    async def claim(self, offer: OfferT, *, timeout: float) -> ClaimReply: ...
    async def watch_cancel(
        self,
        job_id: UUID,
        attempt: int,
        callback: Callable[[JobCancelRequested], None],
        *,
        claim_secret: str | None = None,
    ) -> Closable:
        """Call `callback` when job-api asks this attempt to stop; close what it returns when the
        attempt ends."""
        ...


# --- the data, the stores -------------------------------------------------------------------
@dataclass(frozen=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    format: DataFormat


class DataSource(Protocol):
    async def fetch(
        self, ticket: DataTicket, target_dir: Path, *, on_retry: Callable[[str], None]
    ) -> Downloaded:
        """The ticket's file in `target_dir`, verified. `on_retry` hears, in words for the user,
        why a try failed and when the next one starts."""
        ...


class PublishedModel(Protocol):
    @property
    def store(self) -> ModelStore | str: ...
    @property
    def repo_id(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def uri(self) -> str: ...
    @property
    def created_repo(self) -> bool: ...


class CheckpointStore(Protocol):
    """Where a checkpoint outlives its attempt, so the next one (on any worker) resumes: a shared
    folder, or a branch of the job's Hub repository. Blocking."""

    def save(self, job_id: str, checkpoint: Path) -> None: ...
    def fetch_latest(self, job_id: str, into: Path) -> Path | None: ...
    def discard(self, job_id: str) -> None: ...


# --- how the work runs ----------------------------------------------------------------------
class InThread(Protocol):
    """Runs blocking work (training, a push) off the event loop, so heartbeats and the link go on;
    a thread that ignores a stop must not keep the process alive."""

    def __call__(self, fn: Callable[..., T], *args: Any, name: str) -> Awaitable[T]: ...


class CheckpointWatch(Protocol):
    """Saves the checkpoints a trainer writes while it trains (a preempted attempt still leaves
    the next one something to resume from)."""

    @property
    def last(self) -> int | None:
        """The step of the newest checkpoint saved so far."""
        ...

    async def run(self, interval: float) -> None: ...


# A watch of a trainer's checkpoint folder that hands each finished checkpoint to a save function
# (which says whether it was saved).
WatchCheckpoints = Callable[[Path, Callable[[Path], bool]], CheckpointWatch]


@dataclass(frozen=True)
class Toolkit:
    """What an attempt calls to do its work: built by gpu_worker.entrypoints.toolkit."""

    train: Callable[[TrainRequest, Reporter], TrainResult]
    # Given the claim's spec: the push uses its owner's token and store folder.
    publish: Callable[[TrainResult, TrainRequest, JobSpec], PublishedModel]
    checkpoints: Callable[[JobSpec], CheckpointStore]
    data: DataSource
    in_thread: InThread
    watch_checkpoints: WatchCheckpoints
    # Tries of a push that failed on infrastructure; None: as many as the attempt's publish
    # window allows (JobSettings.publish_retry_seconds).
    publish_tries: int | None = 3


class Display(Protocol):
    """What a person watching the worker sees."""

    def start_job(self, spec: JobSpec) -> None: ...
    def update(self, job_id: str, state: Progress) -> None: ...
    def end_job(self, job_id: str, outcome: Outcome, message: str) -> None: ...
