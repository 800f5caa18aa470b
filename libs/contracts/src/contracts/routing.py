"""Exchange, queue and binding names. A prefix namespaces a whole topology (tests use one each)."""

from dataclasses import dataclass

from contracts.enums import GPUProvider, JobType

# A consumer that keeps failing a message gives up after this many deliveries (dead-letter).
DELIVERY_LIMIT = 5


@dataclass(frozen=True)
class BrokerNames:
    prefix: str = ""

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}finetune.events"

    @property
    def worker_exchange(self) -> str:
        """Topic exchange for worker reports: workers write here, only job-api's queue binds it."""
        return f"{self.prefix}finetune.worker"

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.prefix}finetune.dead-letter"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.prefix}finetune.dead-letter"

    def work_queue(self, job_type: JobType, provider: GPUProvider) -> str:
        return f"{self.prefix}finetune.work.{job_type}.{provider}"

    def work_bindings(self, job_type: JobType, provider: GPUProvider) -> list[str]:
        return [f"job.created.{job_type}.{provider}", f"job.requeued.{job_type}.{provider}"]

    def service_queue(self, service: str) -> str:
        """The queue a service consumes its integration events from."""
        return f"{self.prefix}{service}.events"

    def rpc_queue(self, service: str) -> str:
        return f"{self.prefix}{service}.rpc"

    def rpc_exchange(self, service: str) -> str:
        """Direct exchange in front of a service's RPC queue: workers may write to it, never to
        the default exchange (which would let them put anything into any queue)."""
        return f"{self.prefix}{service}.rpc"

    def all_work_queues(self) -> list[tuple[JobType, GPUProvider, str]]:
        return [(t, p, self.work_queue(t, p)) for t in JobType for p in GPUProvider]


def cancel_binding(job_id: str) -> str:
    """Binding a worker adds for the job it runs, to hear that it must stop."""
    return f"job.cancel_requested.{job_id}"


# Worker reports: the only keys a worker may publish, on the worker exchange.
WORKER_REPORT_KEYS = ("job.progress", "job.failed", "model.pushed")
# Keys job-api's events queue binds on the public events exchange.
JOB_API_EVENT_BINDINGS = ("dataset.validated", "dataset.deleted")
# Everything job-api consumes on its events queue (from both exchanges).
JOB_API_BINDINGS = (*WORKER_REPORT_KEYS, *JOB_API_EVENT_BINDINGS)
JOB_API = "job-api"


# Reference to a dataset issued by the upload service, accepted as a job's training_data_url.
DATASET_REF_PREFIX = "ftd://datasets/"


def dataset_ref(dataset_id: object) -> str:
    return f"{DATASET_REF_PREFIX}{dataset_id}"
