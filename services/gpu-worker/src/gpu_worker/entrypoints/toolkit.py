"""The composition root: the real trainers, stores and adapters behind the service layer's
Toolkit (gpu_worker.service_layer.ports)."""

from collections.abc import Callable

from contracts.rpc import JobSpec
from gpu_worker.adapters.checkpoint_sync import CheckpointSync
from gpu_worker.adapters.download import Downloader, ExternalData, trusting
from gpu_worker.adapters.threads import run_in_thread
from gpu_worker.config import WorkerSettings
from gpu_worker.domain.training import Reporter, TrainRequest, TrainResult
from gpu_worker.service_layer.ports import CheckpointStore, DataSource, PublishedModel, Toolkit


def build_toolkit(
    train: Callable[[TrainRequest, Reporter], TrainResult],
    publish: Callable[[TrainResult, TrainRequest, JobSpec], PublishedModel],
    checkpoints: Callable[[JobSpec], CheckpointStore],
    *,
    data: DataSource | None = None,
    publish_tries: int | None = 3,
) -> Toolkit:
    """`train`, `publish` and `checkpoints` with the worker's data source (default: the platform's
    and public URLs, no allow-list), daemon threads and checkpoint sync around them: what
    `real_toolkit` builds for the real trainers and stores, and tests for theirs."""
    return Toolkit(
        train=train,
        publish=publish,
        checkpoints=checkpoints,
        data=data if data is not None else Downloader(),
        in_thread=run_in_thread,
        watch_checkpoints=CheckpointSync,
        publish_tries=publish_tries,
    )


def real_toolkit(settings: WorkerSettings) -> Toolkit:
    from huggingface_hub import HfApi

    from gpu_worker.adapters.publish import HubCheckpointStore, LocalCheckpointStore, publish_model
    from gpu_worker.training.api import train

    worker_token = settings.hf_token.get_secret_value() if settings.hf_token else None
    store_dir = settings.model_store_dir.resolve()
    local_checkpoints = LocalCheckpointStore(settings.checkpoints.resolve())
    # The Hub checkpoint store of the job this worker runs (one at a time): whether its first
    # save created the repository decides whether the job did.
    hub_checkpoints: dict[str, HubCheckpointStore] = {}

    def hub_token(spec: JobSpec) -> str | None:
        """The owner's own token when they linked one (they may write where they named the
        model), else the worker's."""
        return spec.hub_token or worker_token

    def publish(result: TrainResult, request: TrainRequest, spec: JobSpec) -> PublishedModel:
        checkpoints_store = hub_checkpoints.get(str(spec.job_id))
        return publish_model(
            result,
            output_model=request.output_model,
            job_type=request.job_type,
            base_model=request.base_model,
            hyperparameters=request.hyperparameters,
            hf_token=hub_token(spec),
            store_dir=store_dir,
            owner_key=spec.owner_key,
            created_by_job=checkpoints_store is not None and checkpoints_store.created_repo,
            private=settings.private_repos,
        )

    def checkpoints(spec: JobSpec) -> CheckpointStore:
        # With a Hub token the checkpoints go to a branch of the job's own (private) repo, where
        # an attempt on any other machine finds them; without one, to a folder on this machine.
        token = hub_token(spec)
        hub_checkpoints.clear()
        if token and not settings.checkpoint_dir:
            store = HubCheckpointStore(
                HfApi(token=token), spec.output_model, private=settings.private_repos
            )
            hub_checkpoints[str(spec.job_id)] = store
            return store
        return local_checkpoints

    data = Downloader(
        external=ExternalData(
            allowed_hosts=settings.allowed_data_hosts, verify=trusting(settings.data_ca_file)
        ),
        retry_for=settings.download_retry_seconds,
    )
    # publish_model retries transient failures itself; around it the attempt keeps trying (with
    # back-off) for as long as its publish window allows, so a Hub outage does not cost the job.
    return build_toolkit(train, publish, checkpoints, data=data, publish_tries=None)
