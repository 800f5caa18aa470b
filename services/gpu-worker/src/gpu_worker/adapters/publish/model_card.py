"""The model card (README.md) written next to every trained model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from contracts.enums import JobType
from gpu_worker.domain.training import TrainResult

_LOAD = {
    JobType.EMBEDDING: """```python
from sentence_transformers import SentenceTransformer

model = SentenceTransformer("{repo}"{rev})
embeddings = model.encode(["first sentence", "second sentence"])
```""",
    JobType.CLASSIFIER: """```python
from transformers import pipeline

classify = pipeline("text-classification", model="{repo}"{rev})
print(classify("some text to label"))
```""",
    JobType.LLM_LORA: """```python
from peft import AutoPeftModelForCausalLM
from transformers import AutoTokenizer

model = AutoPeftModelForCausalLM.from_pretrained("{repo}"{rev})  # loads {base} + this adapter
tokenizer = AutoTokenizer.from_pretrained("{repo}"{rev})
```""",
}

_PIPELINE_TAG = {
    JobType.EMBEDDING: "sentence-similarity",
    JobType.CLASSIFIER: "text-classification",
    JobType.LLM_LORA: "text-generation",
}

_LIBRARY = {
    JobType.EMBEDDING: "sentence-transformers",
    JobType.CLASSIFIER: "transformers",
    JobType.LLM_LORA: "peft",
}


def render(
    result: TrainResult,
    *,
    output_model: str,
    job_type: JobType,
    base_model: str,
    hyperparameters: Mapping[str, Any],
    revision: str | None = None,
) -> str:
    rev = f', revision="{revision}"' if revision else ""
    lines = [
        "---",
        f"base_model: {base_model}",
        f"library_name: {_LIBRARY[job_type]}",
        f"pipeline_tag: {_PIPELINE_TAG[job_type]}",
        "tags:",
        "- finetune-dispatcher",
        f"- {job_type.value}",
        "---",
        "",
        f"# {output_model}",
        "",
        f"A {job_type.value} fine-tune of `{base_model}`, trained by Finetune Dispatcher.",
        "",
        "## Evaluation on held-out data",
        "",
        *_metrics_table(result.baseline_metrics, result.metrics),
        "",
        "## Training data",
        "",
        *(f"- {k}: {_fmt(v)}" for k, v in sorted(result.data_stats.items())),
        "",
        "## Hyperparameters",
        "",
        *(f"- {k}: {_fmt(v)}" for k, v in sorted(hyperparameters.items())),
        "",
    ]
    if result.samples:
        lines += ["## Sample generations (held-out prompts, greedy)", ""]
        for i, s in enumerate(result.samples, start=1):
            lines += [
                f"### Sample {i}",
                "",
                "Prompt:",
                _fence(s.get("prompt", "")),
                "Reference:",
                _fence(s.get("reference", "")),
                "Base model:",
                _fence(s.get("base", "")),
                "Fine-tuned:",
                _fence(s.get("tuned", "")),
                "",
            ]
    if result.logs_url:
        lines += [f"Training logs: {result.logs_url}", ""]
    lines += [
        "## How to load it",
        "",
        _LOAD[job_type].format(repo=output_model, rev=rev, base=base_model),
        "",
    ]
    return "\n".join(lines)


def _metrics_table(baseline: Mapping[str, float], tuned: Mapping[str, float]) -> list[str]:
    names = [k for k in tuned if k in baseline] + [
        k for k in tuned if k not in baseline and not k.startswith(("train_", "global_"))
    ]
    if not names:
        return ["No held-out split was evaluated (eval_split = 0 or too few rows)."]
    rows = ["| metric | base model | fine-tuned |", "| --- | --- | --- |"]
    for name in names:
        base = f"{baseline[name]:.4f}" if name in baseline else "n/a"
        rows.append(f"| {name} | {base} | {tuned[name]:.4f} |")
    if "train_loss_first" in tuned and "train_loss_last" in tuned:
        rows += [
            "",
            f"Training loss went from {tuned['train_loss_first']:.4f} "
            f"to {tuned['train_loss_last']:.4f}.",
        ]
    return rows


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _fence(text: str) -> str:
    fence = "````" if "```" in text else "```"
    return f"{fence}text\n{text}\n{fence}"
