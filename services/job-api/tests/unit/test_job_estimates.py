"""The dry run's arithmetic: the trainer's split and steps, throughput from history or priors,
and when it warns."""

import pytest

from contracts.enums import JobType
from contracts.hyperparameters import parse_hyperparameters
from job_api.adapters.throughput import CompletedRun
from job_api.service_layer.estimates import (
    PRIOR_SAMPLES_PER_SECOND,
    KindEstimate,
    Rate,
    duration_text,
    estimate_kinds,
    hardware_kind,
    measured_rate,
    runs_by_kind,
    split_rows,
    warnings_for,
    work_of,
)


@pytest.mark.parametrize(
    ("hardware", "kind"),
    [
        ("CPU only", "cpu"),
        ("no torch installed (run scripts/install-training.sh)", "cpu"),
        ("1 CUDA GPU(s): Tesla T4", "Tesla T4"),
        ("1 CUDA GPU(s): Tesla T4 (15 GB)", "Tesla T4 (15 GB)"),
        ("2 CUDA GPU(s): NVIDIA A100-SXM4-40GB, NVIDIA A100-SXM4-40GB", "2x NVIDIA A100-SXM4-40GB"),
        (None, "unknown"),
        ("  ", "unknown"),
        ("Apple M2", "Apple M2"),
    ],
)
def test_a_worker_kind_comes_from_its_advertised_hardware(hardware: str | None, kind: str) -> None:
    assert hardware_kind(hardware) == kind


@pytest.mark.parametrize(
    ("rows", "eval_split", "expected"),
    [
        (100, 0.1, (90, 10)),
        (10, 0.1, (8, 2)),  # at least two held out
        (3, 0.5, (2, 1)),  # at most half
        (100, 0.0, (100, 0)),
        (1, 0.1, (1, 0)),
    ],
)
def test_the_split_matches_the_trainer(
    rows: int, eval_split: float, expected: tuple[int, int]
) -> None:
    assert split_rows(rows, eval_split) == expected


def test_steps_are_batches_per_epoch_times_epochs() -> None:
    hp = parse_hyperparameters(JobType.EMBEDDING, {"batch_size": 16, "epochs": 3})
    work = work_of(1000, 50_000, hp)
    assert (work.train_rows, work.eval_rows) == (900, 100)
    assert work.steps_per_epoch == 57  # ceil(900 / 16)
    assert work.steps == 171
    assert work.train_tokens == 45_000


def test_lora_counts_optimizer_steps() -> None:
    hp = parse_hyperparameters(
        JobType.LLM_LORA, {"batch_size": 4, "gradient_accumulation_steps": 4, "eval_split": 0}
    )
    work = work_of(100, None, hp)
    assert work.steps_per_epoch == 7  # ceil(ceil(100 / 4) / 4)
    assert work.steps == 7 * hp.epochs
    assert work.train_tokens is None


def run(
    hardware: str | None, seconds: float, rows: int = 110, tokens: int | None = None
) -> CompletedRun:
    # 110 rows, eval_split 0.1: 99 train rows x 2 epochs = 198 samples.
    return CompletedRun(hardware, {"epochs": 2, "eval_split": 0.1}, rows, tokens, seconds)


def test_measured_throughput_is_the_median_of_a_kinds_runs() -> None:
    rate = measured_rate(JobType.EMBEDDING, [run("CPU only", 2), run("CPU only", 4), run(None, 1)])
    assert rate is not None
    assert rate.basis == "measured"
    assert rate.sample_count == 3
    assert rate.samples_per_second == 99.0  # median of 99, 49.5, 198
    assert measured_rate(JobType.EMBEDDING, []) is None


def test_estimates_use_the_history_of_each_kind_online_and_priors_elsewhere() -> None:
    hp = parse_hyperparameters(JobType.EMBEDDING, {"epochs": 1, "eval_split": 0})
    work = work_of(1000, None, hp)
    history = runs_by_kind([run("CPU only", 19.8)])  # 10 samples a second
    got = estimate_kinds(JobType.EMBEDDING, work, {"cpu": 2, "Tesla T4": 1}, history)
    by_kind = {e.worker_kind: e for e in got}
    assert by_kind["cpu"].rate.basis == "measured"
    assert by_kind["cpu"].seconds == pytest.approx(100.0)
    assert by_kind["cpu"].workers_online == 2
    t4 = by_kind["Tesla T4"]
    assert t4.rate.basis == "prior"
    assert t4.rate.sample_count == 0
    assert t4.seconds == pytest.approx(1000 / PRIOR_SAMPLES_PER_SECOND[(JobType.EMBEDDING, "gpu")])
    assert [e.worker_kind for e in got] == ["Tesla T4", "cpu"]  # fastest first


def test_tokens_decide_where_both_sides_counted_them() -> None:
    hp = parse_hyperparameters(JobType.LLM_LORA, {"epochs": 1, "eval_split": 0})
    # History: 99 train rows of 100 tokens, 2 epochs in 99 s: 200 tokens (2 rows) a second.
    history = runs_by_kind([run("1 CUDA GPU(s): L4", 99.0, rows=110, tokens=11_000)])
    long_rows = work_of(100, 100_000, hp)  # 1,000 tokens a row: ten times longer rows
    [estimate] = estimate_kinds(JobType.LLM_LORA, long_rows, {"L4": 1}, history)
    assert estimate.rate.tokens_per_second == pytest.approx(200.0)
    assert estimate.seconds == pytest.approx(500.0)
    without_tokens = work_of(100, None, hp)
    [by_rows] = estimate_kinds(JobType.LLM_LORA, without_tokens, {"L4": 1}, history)
    assert by_rows.seconds == pytest.approx(50.0)


def test_no_worker_online_still_answers_with_priors_and_warns() -> None:
    hp = parse_hyperparameters(JobType.CLASSIFIER, None)
    work = work_of(500, None, hp)
    got = estimate_kinds(JobType.CLASSIFIER, work, {}, {})
    assert {e.worker_kind for e in got} == {"cpu", "gpu"}
    assert all(e.workers_online == 0 and e.rate.basis == "prior" for e in got)
    assert [w.code for w in warnings_for(JobType.CLASSIFIER, work, got)] == ["no_worker_online"]


def estimate(kind: str, seconds: float, online: int = 1) -> KindEstimate:
    return KindEstimate(kind, online, seconds, Rate(1.0, None, "prior", 0))


def test_it_warns_only_when_every_kind_online_needs_more_than_an_hour() -> None:
    hp = parse_hyperparameters(JobType.EMBEDDING, None)
    work = work_of(100, None, hp)
    slow = [estimate("cpu", 7200), estimate("unknown", 4000)]
    [warning] = warnings_for(JobType.EMBEDDING, work, slow)
    assert warning.code == "slow_on_available_workers"
    assert "1 h 7 min" in warning.message
    assert "unknown" in warning.message
    one_fast = [*slow, estimate("Tesla T4", 600)]
    assert warnings_for(JobType.EMBEDDING, work, one_fast) == []
    # A fast kind nobody runs does not help.
    offline_fast = [*slow, estimate("gpu", 60, online=0)]
    assert [w.code for w in warnings_for(JobType.EMBEDDING, work, offline_fast)] == [
        "slow_on_available_workers"
    ]


def test_external_data_has_no_size_and_says_so() -> None:
    got = estimate_kinds(JobType.EMBEDDING, None, {"cpu": 1}, {})
    assert got[0].seconds is None
    assert [w.code for w in warnings_for(JobType.EMBEDDING, None, got)] == ["data_size_unknown"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.2, "1 s"),
        (45, "45 s"),
        (600, "10 min"),
        (3600, "1 h"),
        (12_000, "3 h 20 min"),
        (190_000, "2 d 4 h"),
        (172_800, "2 d"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text
