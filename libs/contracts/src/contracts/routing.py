"""Exchange, queue and binding names. A prefix namespaces a whole topology (tests use one each).

Offers (`job.created`, `job.requeued`) are routed by pool. A shared-pool job's key is
`job.created.<type>.<provider>`; a private one's `job.created.<type>.<provider>.<pool key>`; one
either pool may take, `job.created.<type>.<provider>.<pool key>.any`, which the topic exchange
delivers to both the shared work queue and the owner's pool queue (one message, two offers: the
first claim wins, the other is refused as no longer pending).
"""

import hashlib
import re
from dataclasses import dataclass

from contracts.enums import GPUProvider, JobType, WorkerPool

SHARED_POOL = "shared"
_POOL_KEY = re.compile(r"^p[0-9a-f]{24}$")


def pool_key(user_id: str) -> str:
    """The private pool of a user, as it appears in queue names and routing keys: a hash, so a
    user id (any string a token's `sub` may hold) never reaches the broker's names."""
    return "p" + hashlib.sha256(user_id.encode()).hexdigest()[:24]


def is_pool_key(value: str) -> bool:
    return bool(_POOL_KEY.fullmatch(value))


def offer_routing_key(
    event_type: str,
    job_type: JobType,
    provider: GPUProvider,
    pool: WorkerPool,
    owner_pool: str | None,
) -> str:
    """The routing key of an offer (job.created / job.requeued) for the pool(s) a job targets."""
    base = f"{event_type}.{job_type}.{provider}"
    if pool is WorkerPool.SHARED or owner_pool is None:
        return base
    if pool is WorkerPool.PRIVATE:
        return f"{base}.{owner_pool}"
    return f"{base}.{owner_pool}.any"


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
        """The shared pool's queue for one job type and provider."""
        return f"{self.prefix}finetune.work.{job_type}.{provider}"

    def work_bindings(self, job_type: JobType, provider: GPUProvider) -> list[str]:
        return [
            key
            for event in ("job.created", "job.requeued")
            for key in (f"{event}.{job_type}.{provider}", f"{event}.{job_type}.{provider}.*.any")
        ]

    def pool_queue_prefix(self, pool: str) -> str:
        return f"{self.prefix}finetune.pool.{pool}."

    def pool_queue(self, pool: str, job_type: JobType) -> str:
        """A private pool's queue for one job type (its workers take every provider's jobs)."""
        return f"{self.pool_queue_prefix(pool)}{job_type}"

    def pool_bindings(self, pool: str, job_type: JobType) -> list[str]:
        return [
            key
            for event in ("job.created", "job.requeued")
            for key in (f"{event}.{job_type}.*.{pool}", f"{event}.{job_type}.*.{pool}.any")
        ]

    def offer_queues(
        self, pool: str, job_types: "list[JobType]", provider: GPUProvider
    ) -> list[str]:
        """The queues a worker of `pool` consumes for its job types and provider."""
        if pool == SHARED_POOL:
            return [self.work_queue(t, provider) for t in job_types]
        return [self.pool_queue(pool, t) for t in job_types]

    @property
    def claims_exchange(self) -> str:
        """Topic exchange workers send claims to (routing key `CLAIM_KEY`), bound to job-api's
        RPC queue: their broker permissions allow that one key and nothing else."""
        return f"{self.prefix}finetune.claims"

    def worker_queue_prefix(self, worker_id: str) -> str:
        """Names of the queues a worker declares for itself (replies, cancel notices)."""
        return f"{self.prefix}ftdw.{worker_id}."

    def service_queue(self, service: str) -> str:
        """The queue a service consumes its integration events from."""
        return f"{self.prefix}{service}.events"

    def rpc_queue(self, service: str) -> str:
        return f"{self.prefix}{service}.rpc"

    def all_work_queues(self) -> list[tuple[JobType, GPUProvider, str]]:
        return [(t, p, self.work_queue(t, p)) for t in JobType for p in GPUProvider]


def cancel_binding(job_id: str) -> str:
    """Binding a worker adds for the job it runs, to hear that it must stop."""
    return f"job.cancel_requested.{job_id}"


# Worker reports: the only keys a worker may publish, on the worker exchange.
WORKER_REPORT_KEYS = ("job.progress", "job.failed", "model.pushed", "worker.heartbeat")
# The one routing key a worker may publish on the claims exchange.
CLAIM_KEY = "job.claim"
# Keys job-api's events queue binds on the public events exchange.
JOB_API_EVENT_BINDINGS = ("dataset.validated", "dataset.deleted")
# Everything job-api consumes on its events queue (from both exchanges).
JOB_API_BINDINGS = (*WORKER_REPORT_KEYS, *JOB_API_EVENT_BINDINGS)
JOB_API = "job-api"


# Reference to a dataset issued by the upload service, accepted as a job's training_data_url.
DATASET_REF_PREFIX = "ftd://datasets/"


def dataset_ref(dataset_id: object) -> str:
    return f"{DATASET_REF_PREFIX}{dataset_id}"
