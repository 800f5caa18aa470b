"""What this machine can run, and what it advertises: a CPU, or each CUDA GPU's memory.

Every job type trains on a CPU when its base model is small (contracts.catalogue says what each
base model needs); a large one (a 7B LLM) needs a GPU with enough memory. The worker takes the
job types it is asked for (default: all) and consumes the work queues of exactly the hardware
classes its largest GPU satisfies (contracts.routing), so a CPU box takes LoRA jobs on the tiny
offline Llama and is never offered a 7B job it would hold for days.
"""

import importlib
import importlib.util
from dataclasses import dataclass

from contracts.catalogue import HardwareClass, gpu_memory_gb, satisfied_classes
from contracts.enums import JobType


@dataclass(frozen=True)
class Hardware:
    torch: bool
    cuda_devices: tuple[str, ...]
    # Each CUDA GPU's memory in GB (contracts.catalogue.gpu_memory_gb), in device order.
    gpu_memory: tuple[int, ...] = ()

    @property
    def cuda(self) -> bool:
        return bool(self.cuda_devices)

    @property
    def largest_gpu_gb(self) -> int | None:
        """What the worker advertises: a job trains on one GPU, so the largest one counts."""
        return max(self.gpu_memory) if self.gpu_memory else None

    def classes(self) -> list[HardwareClass]:
        return satisfied_classes(self.largest_gpu_gb)

    def describe(self) -> str:
        if not self.torch:
            return "no torch installed (run scripts/install-training.sh)"
        if not self.cuda:
            return "CPU only"
        gpus = ", ".join(self.cuda_devices)
        if len(self.gpu_memory) == len(self.cuda_devices):
            gpus = ", ".join(
                f"{name} ({gb} GB)"
                for name, gb in zip(self.cuda_devices, self.gpu_memory, strict=True)
            )
        return f"{len(self.cuda_devices)} CUDA GPU(s): {gpus}"


def detect() -> Hardware:
    """Imports torch only when it is installed (the worker itself does not need it)."""
    if importlib.util.find_spec("torch") is None:
        return Hardware(torch=False, cuda_devices=())
    torch = importlib.import_module("torch")

    if not torch.cuda.is_available():
        return Hardware(torch=True, cuda_devices=())
    count = torch.cuda.device_count()
    names = tuple(torch.cuda.get_device_name(i) for i in range(count))
    memory = tuple(
        gpu_memory_gb(torch.cuda.get_device_properties(i).total_memory) for i in range(count)
    )
    return Hardware(torch=True, cuda_devices=names, gpu_memory=memory)


def default_job_types() -> list[JobType]:
    """Every type: which jobs of each the worker is offered follows from its hardware classes."""
    return list(JobType)


def choose_job_types(requested: list[JobType] | None) -> list[JobType]:
    """The requested types (default: every type). llm_lora on a CPU takes the jobs on small
    bases only: theirs is the CPU's class, a 7B's is not."""
    if not requested:
        return default_job_types()
    return list(dict.fromkeys(requested))


def advertised_gpu_memory(hardware: Hardware, *, force: bool = False) -> int | None:
    """The GPU memory (GB) the worker advertises and routes by. `force` (--force-job-types):
    the largest class's, so it is offered every class of its job types whatever its hardware
    (tests, or a GPU the detection misses)."""
    if force:
        return max(c.gpu_memory_gb for c in HardwareClass)
    return hardware.largest_gpu_gb
