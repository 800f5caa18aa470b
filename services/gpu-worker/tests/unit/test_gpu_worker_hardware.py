"""What a worker takes: every job type by default, and of each the hardware classes its largest
GPU satisfies (a CPU box: the CPU's class, e.g. LoRA on the tiny offline Llama, never a 7B)."""

from contracts.catalogue import HardwareClass
from contracts.enums import JobType
from gpu_worker.adapters.hardware import (
    Hardware,
    advertised_gpu_memory,
    choose_job_types,
    default_job_types,
)

CPU = Hardware(torch=True, cuda_devices=())
T4 = Hardware(torch=True, cuda_devices=("Tesla T4",), gpu_memory=(16,))
TWO = Hardware(torch=True, cuda_devices=("Tesla T4", "NVIDIA L4"), gpu_memory=(16, 24))


def test_every_job_type_by_default_llm_lora_on_a_cpu_too() -> None:
    assert default_job_types() == list(JobType)
    assert choose_job_types(None) == list(JobType)
    assert choose_job_types([JobType.LLM_LORA, JobType.LLM_LORA]) == [JobType.LLM_LORA]


def test_a_cpu_satisfies_the_cpu_class_only() -> None:
    assert CPU.largest_gpu_gb is None
    assert advertised_gpu_memory(CPU) is None
    assert CPU.classes() == [HardwareClass.CPU]
    assert CPU.describe() == "CPU only"


def test_the_largest_gpu_counts() -> None:
    assert T4.classes() == [HardwareClass.CPU, HardwareClass.GPU16]
    assert advertised_gpu_memory(TWO) == 24
    assert TWO.classes() == [HardwareClass.CPU, HardwareClass.GPU16, HardwareClass.GPU24]
    assert TWO.describe() == "2 CUDA GPU(s): Tesla T4 (16 GB), NVIDIA L4 (24 GB)"


def test_forcing_takes_every_class() -> None:
    assert advertised_gpu_memory(CPU, force=True) == HardwareClass.GPU80.gpu_memory_gb
