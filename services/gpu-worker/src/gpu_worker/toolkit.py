"""The real trainers and stores behind the runtime's Toolkit."""

from contracts.rpc import JobSpec
from gpu_worker.config import WorkerSettings
from gpu_worker.runtime.job import Checkpoints, PublishedModel, Toolkit
from gpu_worker.training.api import TrainRequest, TrainResult


def real_toolkit(settings: WorkerSettings) -> Toolkit:
    from huggingface_hub import HfApi

    from gpu_worker.publish import HubCheckpointStore, LocalCheckpointStore, publish_model
    from gpu_worker.training.api import train

    hf_token = settings.hf_token.get_secret_value() if settings.hf_token else None
    store_dir = settings.model_store_dir.resolve()
    local_checkpoints = LocalCheckpointStore(settings.checkpoints.resolve())

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

    def checkpoints(spec: JobSpec) -> Checkpoints:
        # With a Hub token the checkpoints go to a branch of the job's own (private) repo, where
        # an attempt on any other machine finds them; without one, to a folder on this machine.
        if hf_token and not settings.checkpoint_dir:
            return HubCheckpointStore(
                HfApi(token=hf_token), spec.output_model, private=settings.private_repos
            )
        return local_checkpoints

    # publish_model retries transient failures itself.
    return Toolkit(train=train, publish=publish, checkpoints=checkpoints, publish_tries=1)
