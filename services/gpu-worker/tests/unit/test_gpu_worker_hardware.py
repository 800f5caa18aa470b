import pytest

from contracts.enums import JobType
from gpu_worker.adapters.hardware import Hardware, choose_job_types, default_job_types

CPU = Hardware(torch=True, cuda_devices=())
GPU = Hardware(torch=True, cuda_devices=("NVIDIA H100",))


def test_llm_lora_only_with_cuda_by_default() -> None:
    assert default_job_types(CPU) == [JobType.EMBEDDING, JobType.CLASSIFIER]
    assert JobType.LLM_LORA in default_job_types(GPU)


def test_llm_lora_on_cpu_must_be_forced() -> None:
    with pytest.raises(ValueError, match="CUDA"):
        choose_job_types([JobType.LLM_LORA], CPU)
    assert choose_job_types([JobType.LLM_LORA], CPU, force=True) == [JobType.LLM_LORA]
    assert choose_job_types(None, CPU) == [JobType.EMBEDDING, JobType.CLASSIFIER]
