"""Worker overhead: what the worker's progress reporting costs a training step, and how long a job
takes from `train()` to its first optimizer step.

Design. One Trainer run (transformers Trainer, sequence classification on the packaged
all-MiniLM-L6-v2, batch 8, 16 tokens, so a step is small and any per-step overhead shows) whose
optimizer steps alternate, in blocks of `--block` steps, between:

- **worker** steps: gpu_worker's ProgressCallback feeding a reporter built like the runtime's
  (a lock, the latest snapshot kept, log lines appended), should_stop() checked, and the loss
  logged on the steps the worker's `logging_steps=0.02` logs (a `.item()` and a report);
- **bare** steps (the baseline, same run, same data, same model and optimizer state): the library
  Trainer with its default logging and no callback of ours.

A wall-clock stamp is taken first thing in on_step_end; the interval after step i (including
our callback's work and the logging that follows) is attributed to step i's mode. Alternating
inside one run cancels the drift a shared machine adds between separate runs; medians resist
the spikes. The first block is warm-up. Target: worker <= 1.03 x bare.

Then the start-up path: `gpu_worker.training.api.train()` on a small classifier job (libraries
already imported, as in a running worker), timing from the call to the first progress report
with step >= 1 (the first optimizer step), split into: reading + model load + baseline evaluation
(up to on_train_begin) and the first step. The import time of the stack in a fresh interpreter is
printed too (a worker pays it once, at start).

  uv run python bench/worker_overhead.py [--quick] [--steps N] [--block B] [--threads T]

Needs the training stack (scripts/install-training.sh). CPU or GPU; nothing is downloaded
(FTD_MINILM_DIR points at a local all-MiniLM-L6-v2 where the package is not installed).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class RuntimeLikeReporter:
    """What the runtime's reporter does per call: take a lock, keep the latest snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.latest: dict[str, Any] = {}
        self.lines: list[str] = []
        self.calls = 0
        self.first_step_at: float | None = None
        self.train_begin_at: float | None = None

    def progress(self, **kwargs: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            self.calls += 1
            self.latest = kwargs
            self.lines.extend(kwargs.get("log_lines", ()))
            step = kwargs.get("step")
            if step is not None and self.train_begin_at is None:
                self.train_begin_at = now
            if step and self.first_step_at is None:
                self.first_step_at = now

    def should_stop(self) -> bool:
        return False


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def build_dataset(tokenizer: Any, rows: int) -> Any:
    from datasets import Dataset

    texts = [f"sample number {i} says {'good' if i % 2 else 'bad'} things" for i in range(rows)]
    ds = Dataset.from_dict({"text": texts, "label": [i % 2 for i in range(rows)]})
    return ds.map(
        lambda b: tokenizer(b["text"], truncation=True, max_length=16),
        batched=True,
        remove_columns=["text"],
    )


class Alternating:
    """Within ONE Trainer run, steps alternate in blocks of `block` between the worker's reporting
    (gpu_worker's ProgressCallback, plus a loss log on the steps the worker's logging_steps would
    log) and nothing. Wall-clock stamps are taken first thing in on_step_end; the interval after
    step i (which includes the callback's work and the logging that follows on_step_end) is
    attributed to step i's mode."""

    def __init__(self, block: int, log_every: int):
        from gpu_worker.training.progress import ProgressCallback

        self.block = block
        self.log_every = log_every
        self.inner = ProgressCallback(RuntimeLikeReporter(), checkpoint_every_s=None)
        self.stamps: list[tuple[float, bool]] = []

    def worker_mode(self, step: int) -> bool:
        return (step // self.block) % 2 == 1

    def callbacks(self) -> list[Any]:
        from transformers import TrainerCallback

        outer = self

        class Stamp(TrainerCallback):  # type: ignore[misc]
            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                outer.stamps.append((time.perf_counter(), outer.worker_mode(state.global_step)))

        class Gate(TrainerCallback):  # type: ignore[misc]
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                outer.inner.on_train_begin(args, state, control, **kw)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                if outer.worker_mode(state.global_step):
                    outer.inner.on_step_end(args, state, control, **kw)
                    if state.global_step % outer.log_every == 0:
                        control.should_log = True

            def on_log(
                self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any
            ) -> None:
                if outer.worker_mode(state.global_step):
                    outer.inner.on_log(args, state, control, logs=logs, **kw)

        return [Stamp(), Gate()]

    def medians(self, skip: int) -> tuple[float, float, int]:
        worker: list[float] = []
        bare: list[float] = []
        for (t0, mode), (t1, _) in zip(self.stamps[skip:], self.stamps[skip + 1 :], strict=False):
            (worker if mode else bare).append(t1 - t0)
        return statistics.median(worker), statistics.median(bare), min(len(worker), len(bare))


def step_overhead(steps: int, block: int) -> tuple[float, float, int]:
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        PrinterCallback,
        Trainer,
        TrainingArguments,
    )

    from contracts.catalogue import OFFLINE_MINILM
    from gpu_worker.training.models import resolve

    model_path = resolve(OFFLINE_MINILM)  # the gt package, or FTD_MINILM_DIR
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    dataset = build_dataset(tokenizer, rows=8 * steps)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=2)
    # The worker's logging_steps=0.02: one loss log per 2% of the run, at least every step.
    log_every = max(1, math.ceil(0.02 * steps))
    probe = Alternating(block, log_every)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            max_steps=steps,
            per_device_train_batch_size=8,
            learning_rate=5e-5,
            seed=0,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            logging_steps=10**9,
            use_cpu=not torch.cuda.is_available(),
            dataloader_num_workers=0,
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            data_collator=DataCollatorWithPadding(tokenizer),
            callbacks=probe.callbacks(),
        )
        trainer.remove_callback(PrinterCallback)  # the worker does not print each log either
        trainer.train()
    return probe.medians(skip=block)  # the first block warms up


def startup() -> dict[str, float]:
    from contracts.catalogue import OFFLINE_MINILM
    from contracts.enums import JobType
    from gpu_worker.domain.training import TrainRequest
    from gpu_worker.training.api import train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "d.csv"
        lines = ["text,label"] + [
            f"row {i} is {'good' if i % 2 else 'bad'},{i % 2}" for i in range(40)
        ]
        data.write_text("\n".join(lines) + "\n")
        reporter = RuntimeLikeReporter()
        request = TrainRequest(
            job_id="bench",
            attempt=1,
            job_type=JobType.CLASSIFIER,
            base_model=OFFLINE_MINILM,
            output_model="bench/model",
            hyperparameters={"epochs": 1, "batch_size": 8, "max_seq_length": 16, "eval_split": 0.2},
            data_path=data,
            data_format="csv",
            work_dir=Path(tmp) / "work",
        )
        started = time.perf_counter()
        train(request, reporter)
        assert reporter.first_step_at is not None
        assert reporter.train_begin_at is not None
        return {
            "to_train_begin_s": reporter.train_begin_at - started,
            "to_first_step_s": reporter.first_step_at - started,
        }


def import_time() -> float:
    code = (
        "import time; t = time.perf_counter(); import torch, transformers, "
        "sentence_transformers, peft, trl; print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--block", type=int, default=5, help="steps per alternation block")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (1: steadier on a shared machine; 0 = torch's default)",
    )
    opts = parser.parse_args()
    steps = opts.steps or (60 if opts.quick else 300)
    try:
        import torch
    except ImportError:
        print("the training stack is not installed: run scripts/install-training.sh")
        return 2
    if opts.threads > 0:
        torch.set_num_threads(opts.threads)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(
        f"worker overhead | device {device} | torch {torch.__version__} | "
        f"threads {torch.get_num_threads()} | load average {load_average()}"
    )
    print(f"step time: one run of {steps} steps, alternating blocks of {opts.block} steps")
    worker, bare, samples = step_overhead(steps, opts.block)
    ratio = worker / bare
    print()
    print(f"{'variant (' + str(samples) + ' steps each)':<32}{'median ms/step':>16}")
    print(f"{'bare Trainer steps (baseline)':<32}{bare * 1000:>16.2f}")
    print(f"{'worker steps (progress, stop)':<32}{worker * 1000:>16.2f}")
    verdict = "PASS" if ratio <= 1.03 else "MISS"
    print(f"ratio worker/bare = {ratio:.3f} (target <= 1.03): {verdict}")
    print()
    s = startup()
    print("start-up of a small classifier job through train() (stack already imported):")
    print(
        f"  train() -> on_train_begin (read data, load model, baseline eval): "
        f"{s['to_train_begin_s']:.2f} s"
    )
    print(
        f"  train() -> first optimizer step:                                  "
        f"{s['to_first_step_s']:.2f} s"
    )
    print(
        f"importing torch+transformers+sentence-transformers+peft+trl (fresh interpreter, once "
        f"per worker): {import_time():.2f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
