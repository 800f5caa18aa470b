"""Weights & Biases, when WANDB_API_KEY is set (or WANDB_MODE=offline, as in tests): the Trainer
logs to it (report_to="wandb") and its run page becomes the job's logs_url."""

from __future__ import annotations

import os
import sys


def wandb_enabled() -> bool:
    if os.environ.get("WANDB_MODE") == "disabled":
        return False
    return bool(os.environ.get("WANDB_API_KEY")) or os.environ.get("WANDB_MODE") == "offline"


def wandb_url() -> str | None:
    """The W&B run page of the run the Trainer opened (None offline or without W&B)."""
    wandb = sys.modules.get("wandb")  # imported by the Trainer's WandbCallback, if it ran
    if not wandb_enabled() or wandb is None:
        return None
    url = getattr(wandb.run, "url", None) if wandb.run is not None else None
    return str(url) if url else None


def finish_wandb() -> None:
    """Close the W&B run the Trainer opened, if any (after the last evaluation is logged)."""
    wandb = sys.modules.get("wandb")
    if not wandb_enabled() or wandb is None:
        return
    if wandb.run is not None:
        wandb.run.finish()
