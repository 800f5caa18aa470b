"""Exchange, queue and binding names. A prefix namespaces a whole topology (tests use one each).

Offers (`job.created`, `job.requeued`) are routed by pool. A shared-pool job's key is
`job.created.<type>.<provider>`; a private one's `job.created.<type>.<provider>.<pool key>`; one
either pool may take, `job.created.<type>.<provider>.<pool key>.any`, which the topic exchange
delivers to both the shared work queue and the owner's pool queue (one message, two offers: the
first claim wins, the other is refused as no longer pending).

A job's hardware class (contracts.catalogue.HardwareClass) is part of its route: `<type>` above is
the job type alone for a CPU-class job (the names embedding and classifier jobs always had) and
`<type>.<class>` for a GPU class, e.g. `job.created.llm_lora.gpu24.colab`. Each class has its own
work queues (`finetune.work.llm_lora.gpu24.colab`, `finetune.pool.<pool key>.llm_lora.gpu24`), and
a worker consumes the queues of exactly the classes its hardware satisfies: a CPU worker is never
offered a job it would hold for days. Class names never equal a provider's, and the extra word
changes the key's length, so no binding of one class matches another's keys.
"""

import hashlib
import re
from dataclasses import dataclass

from contracts.catalogue import HardwareClass, offered_classes, satisfied_classes
from contracts.enums import GPUProvider, JobType, WorkerPool

SHARED_POOL = "shared"
_POOL_KEY = re.compile(r"^p[0-9a-f]{24}$")


def pool_key(user_id: str) -> str:
    """The private pool of a user, as it appears in queue names and routing keys: a hash, so a
    user id (any string a token's `sub` may hold) never reaches the broker's names."""
    return "p" + hashlib.sha256(user_id.encode()).hexdigest()[:24]


def is_pool_key(value: str) -> bool:
    return bool(_POOL_KEY.fullmatch(value))


def offer_route(job_type: JobType, hardware_class: HardwareClass = HardwareClass.CPU) -> str:
    """The words naming a job's route in its offers' keys and its work queues' names."""
    if hardware_class is HardwareClass.CPU:
        return str(job_type)
    return f"{job_type}.{hardware_class}"


def offer_routing_key(
    event_type: str,
    job_type: JobType,
    provider: GPUProvider,
    pool: WorkerPool,
    owner_pool: str | None,
    hardware_class: HardwareClass = HardwareClass.CPU,
) -> str:
    """The routing key of an offer (job.created / job.requeued) for the pool(s) a job targets."""
    base = f"{event_type}.{offer_route(job_type, hardware_class)}.{provider}"
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

    def work_queue(
        self,
        job_type: JobType,
        provider: GPUProvider,
        hardware_class: HardwareClass = HardwareClass.CPU,
    ) -> str:
        """The shared pool's queue for one job type, provider and hardware class."""
        return f"{self.prefix}finetune.work.{offer_route(job_type, hardware_class)}.{provider}"

    def work_bindings(
        self,
        job_type: JobType,
        provider: GPUProvider,
        hardware_class: HardwareClass = HardwareClass.CPU,
    ) -> list[str]:
        route = offer_route(job_type, hardware_class)
        return [
            key
            for event in ("job.created", "job.requeued")
            for key in (f"{event}.{route}.{provider}", f"{event}.{route}.{provider}.*.any")
        ]

    def pool_queue_prefix(self, pool: str) -> str:
        return f"{self.prefix}finetune.pool.{pool}."

    def pool_queue(
        self, pool: str, job_type: JobType, hardware_class: HardwareClass = HardwareClass.CPU
    ) -> str:
        """A private pool's queue for one job type and hardware class (its workers take every
        provider's jobs)."""
        return f"{self.pool_queue_prefix(pool)}{offer_route(job_type, hardware_class)}"

    def pool_bindings(
        self, pool: str, job_type: JobType, hardware_class: HardwareClass = HardwareClass.CPU
    ) -> list[str]:
        route = offer_route(job_type, hardware_class)
        return [
            key
            for event in ("job.created", "job.requeued")
            for key in (f"{event}.{route}.*.{pool}", f"{event}.{route}.*.{pool}.any")
        ]

    def pool_queues(self, pool: str) -> list[tuple[JobType, HardwareClass, str]]:
        """Every queue of a private pool: one per job type and the classes it is offered in."""
        return [(t, c, self.pool_queue(pool, t, c)) for t in JobType for c in offered_classes(t)]

    def offer_queues(
        self,
        pool: str,
        job_types: "list[JobType]",
        provider: GPUProvider,
        gpu_memory_gb: int | None = None,
    ) -> list[str]:
        """The queues a worker of `pool` consumes for its job types and provider: those of each
        hardware class its largest GPU (`gpu_memory_gb`, None: no GPU) satisfies."""
        satisfied = satisfied_classes(gpu_memory_gb)
        routes = [(t, c) for t in job_types for c in offered_classes(t) if c in satisfied]
        if pool == SHARED_POOL:
            return [self.work_queue(t, provider, c) for t, c in routes]
        return [self.pool_queue(pool, t, c) for t, c in routes]

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
        """Every shared work queue, with its job type and provider."""
        return [(t, p, queue) for t, p, _, queue in self.all_work_routes()]

    def all_work_routes(self) -> list[tuple[JobType, GPUProvider, HardwareClass, str]]:
        """Every shared work queue: one per job type, provider and class it is offered in."""
        return [
            (t, p, c, self.work_queue(t, p, c))
            for t in JobType
            for c in offered_classes(t)
            for p in GPUProvider
        ]


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
