"""The real trainers and stores behind the runtime's Toolkit (imported only when a worker starts:
the training stack is heavy and absent from a box that only runs the tests of the runtime)."""

from pathlib import Path

from gpu_worker.config import WorkerSettings
from gpu_worker.runtime.job import PublishedModel, Toolkit
from gpu_worker.training.api import TrainRequest, TrainResult


def real_toolkit(settings: WorkerSettings) -> Toolkit:
    from gpu_worker.publish import CheckpointStore, publish_model
    from gpu_worker.training.api import train

    hf_token = settings.hf_token.get_secret_value() if settings.hf_token else None
    store_dir = settings.model_store_dir.resolve()

    def publish(result: TrainResult, request: TrainRequest) -> PublishedModel:
        return publish_model(
            result,
            output_model=request.output_model,
            job_type=request.job_type,
            base_model=request.base_model,
            hyperparameters=request.hyperparameters,
            hf_token=hf_token,
            store_dir=store_dir,
            private=settings.private_repos,
        )

    checkpoints = CheckpointStore(Path(settings.checkpoints).resolve())
    return Toolkit(train=train, publish=publish, checkpoints=checkpoints)
