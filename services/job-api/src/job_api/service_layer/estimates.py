"""A job's estimate before it is paid for (the create route's dry run): its steps, and how long it
would take on each kind of worker online that could take it.

Steps follow the trainer (gpu-worker training/data.py `split`, training/common.py): the held-out
rows leave the training set, an epoch is ceil(train rows / batch size) batches, and a LoRA run
counts optimizer steps (ceil(batches / gradient accumulation)). Time comes from job-api's own
history: the median throughput of the newest completed jobs of the same type and base model on the
same kind of hardware; with no such history, from PRIOR_SAMPLES_PER_SECOND, and the answer says
which (`basis`).
"""

import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import ValidationError

from contracts.enums import JobType
from contracts.hyperparameters import Hyperparameters, LoraHyperparameters, parse_hyperparameters
from job_api.adapters.throughput import CompletedRun
from job_api.domain.worker import Worker
from job_api.service_layer.jobs import SubmitJob, check_submission
from job_api.service_layer.unit_of_work import Policy, UnitOfWork
from job_api.service_layer.workers import could_take, job_group

Basis = Literal["measured", "prior"]
WarningCode = Literal["slow_on_available_workers", "no_worker_online", "data_size_unknown"]
PriorClass = Literal["cpu", "gpu"]

# Training samples (rows x epochs) per second, wall clock from claim to completion (download,
# model load, evaluation and push included), for the catalogue's default bases with default
# hyperparameters. Rough orders of magnitude, used only until job-api has measured a worker kind:
# a small sentence-transformer or encoder on a laptop CPU trains tens of rows a second, a T4-class
# GPU ten to twenty times that; LoRA on a billion-parameter LLM is a few rows a second on a GPU
# and well under one on a CPU.
PRIOR_SAMPLES_PER_SECOND: dict[tuple[JobType, PriorClass], float] = {
    (JobType.EMBEDDING, "cpu"): 20.0,
    (JobType.EMBEDDING, "gpu"): 400.0,
    (JobType.CLASSIFIER, "cpu"): 10.0,
    (JobType.CLASSIFIER, "gpu"): 250.0,
    (JobType.LLM_LORA, "cpu"): 0.5,
    (JobType.LLM_LORA, "gpu"): 8.0,
}
# Completed jobs per worker kind whose median is the measured throughput.
HISTORY_PER_KIND = 20
# Beyond this on every worker kind that could take it, the dry run warns.
SLOW_AFTER = timedelta(hours=1)
UNKNOWN_KIND = "unknown"

# How gpu-worker describes itself (adapters/hardware.py Hardware.describe).
_CUDA = re.compile(r"^\s*(\d+)\s+CUDA GPU\(s\)\s*:\s*(.+)$", re.IGNORECASE)


def hardware_kind(hardware: str | None) -> str:
    """A worker's kind from the hardware it advertises: `cpu`, or its GPU's name (`2x <name>`
    for several); `unknown` for a worker that never said (the shared key's HTTP worker)."""
    if hardware is None or not hardware.strip():
        return UNKNOWN_KIND
    found = _CUDA.match(hardware)
    if found is not None:
        count, names = int(found.group(1)), found.group(2).split(",")
        first = names[0].strip()[:100]
        return first if count <= 1 else f"{count}x {first}"
    if "cpu" in hardware.lower() or "no torch" in hardware.lower():
        return "cpu"
    return hardware.strip()[:100]


def hardware_class(kind: str) -> PriorClass:
    """Which prior a kind gets: an unknown worker is taken to be the slower one."""
    return "cpu" if kind in ("cpu", UNKNOWN_KIND) else "gpu"


def split_rows(rows: int, eval_split: float) -> tuple[int, int]:
    """(train rows, held-out rows), as gpu-worker's `split`: at least 2 held out when
    eval_split > 0, at most half."""
    if eval_split <= 0:
        return rows, 0
    held_out = min(max(2, round(rows * eval_split)), rows // 2)
    return rows - held_out, held_out


def steps_per_epoch(train_rows: int, hp: Hyperparameters) -> int:
    batches = math.ceil(train_rows / hp.batch_size)
    if isinstance(hp, LoraHyperparameters):
        return math.ceil(batches / hp.gradient_accumulation_steps)
    return batches


@dataclass(frozen=True)
class Work:
    """What a run trains on: rows, epochs, steps, and tokens where the upload counted them."""

    rows: int
    train_rows: int
    eval_rows: int
    epochs: int
    steps_per_epoch: int
    train_tokens: int | None  # one epoch's

    @property
    def steps(self) -> int:
        return self.steps_per_epoch * self.epochs

    @property
    def samples(self) -> int:
        return self.train_rows * self.epochs


def work_of(rows: int, tokens: int | None, hp: Hyperparameters) -> Work:
    train, held_out = split_rows(rows, hp.eval_split)
    train_tokens = None if tokens is None or rows <= 0 else tokens * train // rows
    return Work(rows, train, held_out, hp.epochs, steps_per_epoch(train, hp), train_tokens)


@dataclass(frozen=True)
class Rate:
    samples_per_second: float
    tokens_per_second: float | None
    basis: Basis
    sample_count: int


def prior_rate(job_type: JobType, kind: str) -> Rate:
    return Rate(PRIOR_SAMPLES_PER_SECOND[(job_type, hardware_class(kind))], None, "prior", 0)


def measured_rate(job_type: JobType, runs: Sequence[CompletedRun]) -> Rate | None:
    """The median throughput of `runs` (one kind's newest, newest first); None without any."""
    samples: list[float] = []
    tokens: list[float] = []
    for run in runs[:HISTORY_PER_KIND]:
        try:
            hp = parse_hyperparameters(job_type, run.hyperparameters)
        except ValidationError:
            continue
        work = work_of(run.rows, run.estimated_tokens, hp)
        if work.samples <= 0 or run.seconds <= 0:
            continue
        samples.append(work.samples / run.seconds)
        if work.train_tokens:
            tokens.append(work.train_tokens * work.epochs / run.seconds)
    if not samples:
        return None
    return Rate(
        statistics.median(samples),
        statistics.median(tokens) if tokens else None,
        "measured",
        len(samples),
    )


def seconds_for(work: Work, rate: Rate) -> float:
    """Tokens decide where both the job's data and the history counted them (rows differ in
    length from one dataset to the next); rows otherwise."""
    if work.train_tokens is not None and rate.tokens_per_second:
        return work.train_tokens * work.epochs / rate.tokens_per_second
    return work.samples / rate.samples_per_second


@dataclass(frozen=True)
class KindEstimate:
    worker_kind: str
    workers_online: int
    seconds: float | None
    rate: Rate


@dataclass(frozen=True)
class EstimateWarning:
    code: WarningCode
    message: str


@dataclass(frozen=True)
class JobEstimate:
    job_type: JobType
    base_model: str
    epochs: int
    batch_size: int
    work: Work | None
    estimates: list[KindEstimate]
    warnings: list[EstimateWarning]


def runs_by_kind(runs: Iterable[CompletedRun]) -> dict[str, list[CompletedRun]]:
    by_kind: dict[str, list[CompletedRun]] = defaultdict(list)
    for run in runs:
        by_kind[hardware_kind(run.hardware)].append(run)
    return by_kind


def online_kinds(workers: Iterable[Worker]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for worker in workers:
        counts[hardware_kind(worker.hardware)] += 1
    return dict(counts)


def duration_text(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 20 min`, `2 d 4 h`: what a warning says."""
    if seconds < 60:
        return f"{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def estimate_kinds(
    job_type: JobType,
    work: Work | None,
    online: dict[str, int],
    history: dict[str, list[CompletedRun]],
) -> list[KindEstimate]:
    """One estimate per kind online; with none online, one per kind seen in the history and the
    two priors (cpu, gpu), so the answer still says what a worker would need."""
    kinds = dict(online)
    if not kinds:
        kinds = dict.fromkeys([*history, "cpu", "gpu"], 0)
    out = []
    for kind, count in kinds.items():
        rate = measured_rate(job_type, history.get(kind, [])) or prior_rate(job_type, kind)
        seconds = None if work is None else seconds_for(work, rate)
        out.append(KindEstimate(kind, count, seconds, rate))
    return sorted(out, key=lambda e: (e.workers_online == 0, e.seconds or 0.0, e.worker_kind))


def warnings_for(
    job_type: JobType, work: Work | None, estimates: Sequence[KindEstimate]
) -> list[EstimateWarning]:
    out: list[EstimateWarning] = []
    online = [e for e in estimates if e.workers_online > 0]
    if not online:
        out.append(
            EstimateWarning(
                "no_worker_online",
                f"No worker that takes this {job_type} job is online: it would wait until one "
                "starts. The estimates show what a CPU or GPU worker would need.",
            )
        )
    if work is None:
        out.append(
            EstimateWarning(
                "data_size_unknown",
                "The training data is an external URL, so its size is not known before a "
                "worker downloads it: upload the file to get steps and time.",
            )
        )
        return out
    timed = [e for e in online if e.seconds is not None]
    if timed and all(
        e.seconds is not None and e.seconds > SLOW_AFTER.total_seconds() for e in timed
    ):
        fastest = min(timed, key=lambda e: e.seconds or 0.0)
        assert fastest.seconds is not None
        out.append(
            EstimateWarning(
                "slow_on_available_workers",
                f"This job would take about {duration_text(fastest.seconds)} on the fastest "
                f"worker online ({fastest.worker_kind}); fewer epochs, less data or a GPU "
                "worker would shorten it.",
            )
        )
    return out


class RunHistory(Protocol):
    async def completed_runs(
        self, job_type: str, base_model: str, *, limit: int = 200
    ) -> list[CompletedRun]: ...


async def estimate_job(
    uow: UnitOfWork, history: RunHistory, cmd: SubmitJob, policy: Policy, *, now: datetime
) -> JobEstimate:
    """The dry run of a create: the same checks (same errors), nothing written."""
    checked = await check_submission(uow, cmd, policy)
    hp = checked.hyperparameters
    work = None
    if checked.dataset_id is not None:
        dataset = await uow.datasets.get(checked.dataset_id)
        if dataset is not None:
            work = work_of(dataset.rows, dataset.estimated_tokens, hp)
    group = job_group(cmd.worker_pool, checked.owner_pool, cmd.job_type, cmd.gpu_provider)
    # Only workers whose hardware the base model fits count (a 7B LoRA never runs on a CPU).
    needs = policy.catalogue.hardware_class(cmd.job_type, cmd.base_model)
    live = [
        w
        for w in await uow.workers.seen_since(now - policy.worker_online)
        if could_take(w, group, needs)
        and w.status(now=now, online=policy.worker_online) != "offline"
    ]
    runs = await history.completed_runs(str(cmd.job_type), cmd.base_model)
    estimates = estimate_kinds(cmd.job_type, work, online_kinds(live), runs_by_kind(runs))
    return JobEstimate(
        job_type=cmd.job_type,
        base_model=cmd.base_model,
        epochs=hp.epochs,
        batch_size=hp.batch_size,
        work=work,
        estimates=estimates,
        warnings=warnings_for(cmd.job_type, work, estimates),
    )
