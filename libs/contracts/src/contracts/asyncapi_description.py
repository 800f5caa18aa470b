"""The prose of the AsyncAPI document (contracts.asyncapi): how events, worker reports and the
claim RPC travel, and which queues exist, with the names a `BrokerNames` gives them."""

from typing import cast

from contracts.catalogue import HardwareClass
from contracts.enums import GPUProvider, JobType
from contracts.events import EVENT_TYPES
from contracts.routing import DELIVERY_LIMIT, JOB_API, WORKER_REPORT_KEYS, BrokerNames

EVENT_CONTENT_TYPE = "application/cloudevents+json"


def work_queue_pattern(names: BrokerNames, gpu_class: bool = False) -> str:
    """A shared work queue's name: a CPU-class job's, or (`gpu_class`) a GPU class's."""
    job_type = cast(JobType, "{job_type}")
    if gpu_class:
        job_type = cast(JobType, "{job_type}.{hardware_class}")
    return names.work_queue(job_type, cast(GPUProvider, "{provider}"))


def description(names: BrokerNames) -> str:
    queue = work_queue_pattern(names)
    gpu_queue = work_queue_pattern(names, gpu_class=True)
    must_route = " and ".join(
        f"`{event_type}`" for event_type, payload in EVENT_TYPES.items() if payload.must_route
    )
    return "\n".join(
        [
            f"Integration events travel over the durable topic exchange `{names.events_exchange}`"
            f" as CloudEvents 1.0 JSON envelopes (content type `{EVENT_CONTENT_TYPE}`, AMQP "
            "`message_id` = envelope `id`, `type` = envelope `type`, persistent). The envelope's "
            "`data` is the payload named by `type`; consumers validate it on receipt, ignore "
            "fields they do not know and dead-letter what they cannot parse.",
            "",
            "Worker reports (" + ", ".join(f"`{key}`" for key in WORKER_REPORT_KEYS) + ") travel "
            f"instead over the topic exchange `{names.worker_exchange}`, which only job-api's "
            "queue binds: each carries the attempt's claim secret, and job-api fences them "
            "before anything public is published (`model.completed` is job-api's, after "
            "fencing). Events job-api publishes about one job carry an increasing envelope "
            "`sequence` (CloudEvents extension) so consumers can drop a stale status.",
            "",
            "Each channel is a routing-key pattern on its exchange; `{...}` marks a parameter. "
            "On each channel `subscribe` lists the services that publish and `publish` the "
            "services that consume (AsyncAPI 2 names operations from the reader's side).",
            "",
            "Queues:",
            "",
            f"- Work queues `{queue}` (CPU-class jobs) and `{gpu_queue}` (GPU classes), one "
            "per job type, GPU provider and hardware class the job type's base models need "
            f"({len(names.all_work_routes())} in all), each bound to "
            "`job.created.{route}.{provider}` and `job.requeued.{route}.{provider}` (and "
            "their `.*.any` forms, a job either pool may take), where "
            "`{route}` is `{job_type}` for the CPU class and `{job_type}.{hardware_class}` "
            "otherwise (e.g. `finetune.work.llm_lora.gpu24.colab`, bound to "
            "`job.created.llm_lora.gpu24.colab`). The `hardware_class` (`"
            + "`, `".join(HardwareClass)
            + "`) is the payload's: the smallest class giving its base model's "
            "`min_gpu_memory_gb`. A worker consumes the queues of every class its largest GPU "
            "satisfies (the CPU class always, a GPU class needing at most its memory), so a "
            "job's offers reach only workers that can train it.",
            f"- Service queues `{names.service_queue('{service}')}`, bound to the keys the "
            "service consumes.",
            f"- Work and service queues are quorum queues with a delivery limit of "
            f"{DELIVERY_LIMIT} (`x-delivery-limit`): a message delivered that often without an "
            f"ack is dead-lettered (at least once) through the fanout exchange "
            f"`{names.dead_letter_exchange}` into the queue `{names.dead_letter_queue}`.",
            f"- `{names.rpc_queue(JOB_API)}`: claim requests (`ClaimJob`), answered with "
            "`ClaimReply`.",
            "",
            "Every publish is confirmed and mandatory. "
            f"{must_route} must route: a relay must not drop one that no queue took.",
            "",
            "A prefix (`BrokerNames(prefix=...)`) namespaces every exchange and queue name; "
            "routing keys are never prefixed.",
        ]
    )
