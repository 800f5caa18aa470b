"""Storing what training produced: the model (Hub or local store) and resumable checkpoints."""

from gpu_worker.publish.checkpoints import CheckpointStore, HubCheckpointStore, LocalCheckpointStore
from gpu_worker.publish.errors import PublishError
from gpu_worker.publish.push import Published, publish_model

__all__ = [
    "CheckpointStore",
    "HubCheckpointStore",
    "LocalCheckpointStore",
    "PublishError",
    "Published",
    "publish_model",
]
