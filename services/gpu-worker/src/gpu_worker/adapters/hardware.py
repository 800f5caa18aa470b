"""What this machine can run: LoRA fine-tuning of an LLM needs a CUDA GPU; sentence-embedding and
classifier jobs train (slowly) on a CPU too."""

import importlib
import importlib.util
from dataclasses import dataclass

from contracts.enums import JobType

CPU_JOB_TYPES = (JobType.EMBEDDING, JobType.CLASSIFIER)


@dataclass(frozen=True)
class Hardware:
    torch: bool
    cuda_devices: tuple[str, ...]

    @property
    def cuda(self) -> bool:
        return bool(self.cuda_devices)

    def describe(self) -> str:
        if not self.torch:
            return "no torch installed (run scripts/install-training.sh)"
        if not self.cuda:
            return "CPU only"
        return f"{len(self.cuda_devices)} CUDA GPU(s): {', '.join(self.cuda_devices)}"


def detect() -> Hardware:
    """Imports torch only when it is installed (the worker itself does not need it)."""
    if importlib.util.find_spec("torch") is None:
        return Hardware(torch=False, cuda_devices=())
    torch = importlib.import_module("torch")

    if not torch.cuda.is_available():
        return Hardware(torch=True, cuda_devices=())
    names = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return Hardware(torch=True, cuda_devices=names)


def default_job_types(hardware: Hardware) -> list[JobType]:
    types = list(CPU_JOB_TYPES)
    if hardware.cuda:
        types.append(JobType.LLM_LORA)
    return types


def choose_job_types(
    requested: list[JobType] | None, hardware: Hardware, *, force: bool = False
) -> list[JobType]:
    """The requested types (default: what the hardware runs). llm_lora without CUDA only when
    forced: a CPU box that takes an LLM job would hold it for days."""
    if not requested:
        return default_job_types(hardware)
    types = list(dict.fromkeys(requested))
    if JobType.LLM_LORA in types and not hardware.cuda and not force:
        raise ValueError(
            "llm_lora needs a CUDA GPU and none was found; pass --force-job-types to take "
            "llm_lora jobs anyway (tiny models, tests)"
        )
    return types
