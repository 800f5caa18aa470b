"""The catalogue: the brief's base models always, offline ones only when a deployment asks."""

import pytest

from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA, Catalogue
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
