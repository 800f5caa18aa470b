"""The catalogue: the brief's base models always, offline ones only when a deployment asks."""

import pytest

from contracts.catalogue import (
    OFFLINE_MINILM,
    OFFLINE_TINY_LLAMA,
    Catalogue,
    HardwareClass,
    gpu_memory_gb,
    hardware_class,
    satisfied_classes,
)
from contracts.enums import JobType

BRIEF_MODELS = {
    JobType.EMBEDDING: {
        "intfloat/multilingual-e5-base",
        "intfloat/multilingual-e5-large",
        "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
    },
    JobType.CLASSIFIER: {"bert-base-multilingual-cased", "xlm-roberta-base"},
    JobType.LLM_LORA: {"meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"},
}
OFFLINE_MODELS = {
    JobType.EMBEDDING: {OFFLINE_MINILM},
    JobType.CLASSIFIER: {OFFLINE_MINILM},
    JobType.LLM_LORA: {OFFLINE_TINY_LLAMA},
}


@pytest.mark.parametrize("include_offline", [False, True])
@pytest.mark.parametrize("job_type", list(JobType))
def test_brief_models_are_always_offered(include_offline: bool, job_type: JobType) -> None:
    catalogue = Catalogue(include_offline=include_offline)

    assert BRIEF_MODELS[job_type] <= set(catalogue.allowed_ids(job_type))
    assert all(
        not m.offline for m in catalogue.for_type(job_type) if m.id in BRIEF_MODELS[job_type]
    )


@pytest.mark.parametrize("job_type", list(JobType))
def test_offline_entries_only_when_included(job_type: JobType) -> None:
    without = Catalogue(include_offline=False)
    with_offline = Catalogue(include_offline=True)

    assert set(without.allowed_ids(job_type)) == BRIEF_MODELS[job_type]
    assert not any(m.offline for m in without.for_type(job_type))
    assert (
        set(with_offline.allowed_ids(job_type)) == BRIEF_MODELS[job_type] | OFFLINE_MODELS[job_type]
    )
    offline = [m for m in with_offline.for_type(job_type) if m.offline]
    assert {m.id for m in offline} == OFFLINE_MODELS[job_type]
    assert all(m.source for m in offline)


@pytest.mark.parametrize("job_type", list(JobType))
def test_every_entry_is_listed_under_its_own_type(job_type: JobType) -> None:
    by_type = Catalogue(include_offline=True).by_type()

    assert set(by_type) == set(JobType)
    assert all(m.job_type == job_type for m in by_type[job_type])


@pytest.mark.parametrize("job_type", list(JobType))
def test_find_returns_the_entry_for_its_type(job_type: JobType) -> None:
    catalogue = Catalogue(include_offline=False)

    for model_id in BRIEF_MODELS[job_type]:
        found = catalogue.find(job_type, model_id)
        assert found is not None
        assert (found.id, found.job_type) == (model_id, job_type)


def test_find_is_per_type() -> None:
    catalogue = Catalogue(include_offline=False)

    assert catalogue.find(JobType.CLASSIFIER, "intfloat/multilingual-e5-base") is None
    assert catalogue.find(JobType.EMBEDDING, "no/such-model") is None


def test_find_offline_model_shared_by_two_types() -> None:
    catalogue = Catalogue(include_offline=True)

    embedding = catalogue.find(JobType.EMBEDDING, OFFLINE_MINILM)
    classifier = catalogue.find(JobType.CLASSIFIER, OFFLINE_MINILM)

    assert embedding is not None
    assert classifier is not None
    assert (embedding.job_type, classifier.job_type) == (JobType.EMBEDDING, JobType.CLASSIFIER)
    assert catalogue.find(JobType.LLM_LORA, OFFLINE_MINILM) is None
    assert Catalogue(include_offline=False).find(JobType.EMBEDDING, OFFLINE_MINILM) is None


def test_small_bases_run_on_a_cpu_and_7b_ones_need_a_24_gb_gpu() -> None:
    catalogue = Catalogue(include_offline=True)

    assert catalogue.hardware_class(JobType.LLM_LORA, OFFLINE_TINY_LLAMA) is HardwareClass.CPU
    for model in BRIEF_MODELS[JobType.LLM_LORA]:
        assert catalogue.hardware_class(JobType.LLM_LORA, model) is HardwareClass.GPU24
    for job_type in (JobType.EMBEDDING, JobType.CLASSIFIER):
        assert {m.hardware_class for m in catalogue.for_type(job_type)} == {HardwareClass.CPU}
    # A model the catalogue lacks never reaches a job (it is refused at creation): a CPU's.
    assert catalogue.hardware_class(JobType.LLM_LORA, "x/unknown") is HardwareClass.CPU


@pytest.mark.parametrize(
    ("need", "expected"),
    [
        (None, HardwareClass.CPU),
        (0, HardwareClass.CPU),
        (1, HardwareClass.GPU16),
        (16, HardwareClass.GPU16),
        (17, HardwareClass.GPU24),
        (24, HardwareClass.GPU24),
        (40, HardwareClass.GPU40),
        (41, HardwareClass.GPU80),
        (80, HardwareClass.GPU80),
    ],
)
def test_a_need_gets_the_smallest_class_that_gives_it(
    need: int | None, expected: HardwareClass
) -> None:
    assert hardware_class(need) is expected


def test_a_need_beyond_every_class_is_refused() -> None:
    with pytest.raises(ValueError, match="81 GB"):
        hardware_class(81)


@pytest.mark.parametrize(
    ("gpu", "classes"),
    [
        (None, ["cpu"]),
        (0, ["cpu"]),
        (15, ["cpu"]),
        (16, ["cpu", "gpu16"]),
        (25, ["cpu", "gpu16", "gpu24"]),
        (42, ["cpu", "gpu16", "gpu24", "gpu40"]),
        (85, ["cpu", "gpu16", "gpu24", "gpu40", "gpu80"]),
    ],
)
def test_a_worker_satisfies_every_class_up_to_its_gpu(gpu: int | None, classes: list[str]) -> None:
    assert satisfied_classes(gpu) == classes
    for c in HardwareClass:
        assert c.satisfied_by(gpu) is (c in classes)


@pytest.mark.parametrize(
    ("total_memory", "sold_as"),
    [
        (15_843_721_216, 16),  # Tesla T4
        (17_071_734_784, 17),  # Tesla P100 16 GB (Kaggle): still a 16 GB-class card
        (23_580_639_232, 24),  # L4
        (25_393_692_672, 25),  # RTX 4090
        (42_505_207_808, 43),  # A100 40 GB
        (85_031_714_816, 85),  # H100 80 GB
    ],
)
def test_a_gpus_memory_is_counted_in_the_gb_it_is_sold_with(
    total_memory: int, sold_as: int
) -> None:
    assert gpu_memory_gb(total_memory) == sold_as


def test_the_need_reads_as_a_sentence() -> None:
    assert HardwareClass.GPU24.need() == "needs a GPU worker with ≥ 24 GB"
    assert HardwareClass.CPU.need() == "runs on a CPU"
