"""Storing what training produced: the model (Hub or local store) and resumable checkpoints."""

from gpu_worker.adapters.publish.checkpoints import HubCheckpointStore, LocalCheckpointStore
from gpu_worker.adapters.publish.push import Published, publish_model

__all__ = [
    "HubCheckpointStore",
    "LocalCheckpointStore",
    "Published",
    "publish_model",
]
