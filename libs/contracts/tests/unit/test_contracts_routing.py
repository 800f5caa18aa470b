"""Broker names: a prefix namespaces everything; one work queue per job type and provider."""

from datetime import UTC, datetime
from itertools import product
from uuid import UUID

import pytest

from contracts.catalogue import HardwareClass, offered_classes
from contracts.enums import CancelReason, GPUProvider, JobType, WorkerPool
from contracts.events import JobCancelRequested, JobCreated, JobRequeued
from contracts.routing import SHARED_POOL, BrokerNames, cancel_binding, is_pool_key, pool_key

JOB_ID = UUID("00000000-0000-4000-8000-000000000001")


def _names(names: BrokerNames) -> list[str]:
    return [
        names.events_exchange,
        names.worker_exchange,
        names.dead_letter_exchange,
        names.dead_letter_queue,
        names.service_queue("job-api"),
        names.rpc_queue("job-api"),
        names.claims_exchange,
        names.pool_queue(pool_key("u"), JobType.EMBEDDING),
        names.worker_queue_prefix("w"),
        *(queue for _, _, queue in names.all_work_queues()),
    ]


def test_default_names() -> None:
    names = BrokerNames()

    assert names.events_exchange == "finetune.events"
    assert names.worker_exchange == "finetune.worker"
    assert names.dead_letter_exchange == "finetune.dead-letter"
    assert names.dead_letter_queue == "finetune.dead-letter"
    assert names.service_queue("job-api") == "job-api.events"
    assert names.rpc_queue("job-api") == "job-api.rpc"


@pytest.mark.parametrize("prefix", ["t1.", "test-3f2a."])
def test_prefix_prefixes_every_name(prefix: str) -> None:
    plain = _names(BrokerNames())
    prefixed = _names(BrokerNames(prefix=prefix))

    assert prefixed == [prefix + name for name in plain]


def test_prefix_leaves_routing_keys_alone() -> None:
    prefixed = BrokerNames(prefix="t1.")

    assert prefixed.work_bindings(
        JobType.EMBEDDING, GPUProvider.LOCAL
    ) == BrokerNames().work_bindings(JobType.EMBEDDING, GPUProvider.LOCAL)


def test_one_work_queue_per_type_provider_and_offered_class() -> None:
    routes = BrokerNames().all_work_routes()

    expected = {(t, p, c) for t in JobType for p in GPUProvider for c in offered_classes(t)}
    assert {(t, p, c) for t, p, c, _ in routes} == expected
    assert len({queue for *_, queue in routes}) == len(routes) == len(expected)
    # Embedding and classifier jobs keep the one CPU route (and queue name) they always had.
    assert offered_classes(JobType.EMBEDDING) == [HardwareClass.CPU]
    assert offered_classes(JobType.CLASSIFIER) == [HardwareClass.CPU]
    assert offered_classes(JobType.LLM_LORA) == [HardwareClass.CPU, HardwareClass.GPU24]


def _classed_offer(job_type: JobType, needs: HardwareClass, pool: WorkerPool) -> JobCreated:
    return JobCreated(
        job_id=JOB_ID,
        user_id="u1",
        job_type=job_type,
        gpu_provider=GPUProvider.COLAB,
        base_model="m",
        output_model="o",
        hyperparameters={},
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        worker_pool=pool,
        owner_pool=None if pool is WorkerPool.SHARED else pool_key("alice"),
        hardware_class=needs,
    )


@pytest.mark.parametrize("pool", list(WorkerPool))
def test_an_offer_reaches_the_queues_of_its_hardware_class_only(pool: WorkerPool) -> None:
    names = BrokerNames()
    alice = pool_key("alice")
    routes = [(t, c) for t in JobType for c in offered_classes(t)]
    for job_type, needs in routes:
        key = _classed_offer(job_type, needs, pool).routing_key()
        for t, c in routes:
            mine = (t, c) == (job_type, needs)
            shared = _reaches(names.work_bindings(t, GPUProvider.COLAB, c), key)
            private = _reaches(names.pool_bindings(alice, t, c), key)
            assert shared is (mine and pool is not WorkerPool.PRIVATE), (key, t, c)
            assert private is (mine and pool is not WorkerPool.SHARED), (key, t, c)


def test_a_worker_consumes_the_queues_of_the_classes_its_gpu_satisfies() -> None:
    names = BrokerNames()
    lora = [JobType.LLM_LORA]

    cpu = names.offer_queues(SHARED_POOL, lora, GPUProvider.LOCAL, None)
    assert cpu == ["finetune.work.llm_lora.local"]
    # A 16 GB card is short of a 7B's class: it is not offered those jobs either.
    assert names.offer_queues(SHARED_POOL, lora, GPUProvider.LOCAL, 16) == cpu
    assert names.offer_queues(SHARED_POOL, lora, GPUProvider.LOCAL, 24) == [
        "finetune.work.llm_lora.local",
        "finetune.work.llm_lora.gpu24.local",
    ]
    alice = pool_key("alice")
    assert names.offer_queues(alice, lora, GPUProvider.LOCAL, 80) == [
        f"finetune.pool.{alice}.llm_lora",
        f"finetune.pool.{alice}.llm_lora.gpu24",
    ]
    assert {q for *_, q in names.pool_queues(alice)} >= set(
        names.offer_queues(alice, list(JobType), GPUProvider.LOCAL, 80)
    )


@pytest.mark.parametrize(("job_type", "provider"), list(product(JobType, GPUProvider)))
def test_work_queue_name_and_bindings(job_type: JobType, provider: GPUProvider) -> None:
    names = BrokerNames()
    created = JobCreated(
        job_id=JOB_ID,
        user_id="u1",
        job_type=job_type,
        gpu_provider=provider,
        base_model="m",
        output_model="o",
        hyperparameters={},
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
    )
    requeued = JobRequeued(
        job_id=JOB_ID, job_type=job_type, gpu_provider=provider, previous_attempt=1, reason="x"
    )

    assert names.work_queue(job_type, provider) == f"finetune.work.{job_type}.{provider}"
    # The queue hears exactly the events that route to its type and provider.
    assert _reaches(names.work_bindings(job_type, provider), created.routing_key())
    assert _reaches(names.work_bindings(job_type, provider), requeued.routing_key())


def _topic_match(binding: str, key: str) -> bool:
    """AMQP topic matching (`*` one word, `#` zero or more), as RabbitMQ does it."""
    pattern, words = binding.split("."), key.split(".")

    def match(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(words)
        if pattern[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(words) + 1))
        return j < len(words) and pattern[i] in ("*", words[j]) and match(i + 1, j + 1)

    return match(0, 0)


def _reaches(bindings: list[str], key: str) -> bool:
    return any(_topic_match(binding, key) for binding in bindings)


def _offer(pool: WorkerPool, owner: str | None, provider: GPUProvider) -> str:
    return JobCreated(
        job_id=JOB_ID,
        user_id="alice",
        job_type=JobType.EMBEDDING,
        gpu_provider=provider,
        base_model="m",
        output_model="o",
        hyperparameters={},
        created_at=datetime(2025, 1, 1, tzinfo=UTC),
        worker_pool=pool,
        owner_pool=owner,
    ).routing_key()


@pytest.mark.parametrize(
    ("pool", "shared", "alices", "bobs"),
    [
        (WorkerPool.SHARED, True, False, False),
        (WorkerPool.PRIVATE, False, True, False),
        (WorkerPool.ANY, True, True, False),
    ],
)
def test_an_offer_reaches_the_pools_the_job_targets_and_no_other(
    pool: WorkerPool, shared: bool, alices: bool, bobs: bool
) -> None:
    names = BrokerNames()
    alice, bob = pool_key("alice"), pool_key("bob")
    key = _offer(pool, alice, GPUProvider.COLAB)

    assert _reaches(names.work_bindings(JobType.EMBEDDING, GPUProvider.COLAB), key) is shared
    assert _reaches(names.pool_bindings(alice, JobType.EMBEDDING), key) is alices
    assert _reaches(names.pool_bindings(bob, JobType.EMBEDDING), key) is bobs
    # Never another provider's shared queue, never another job type's queue.
    assert not _reaches(names.work_bindings(JobType.EMBEDDING, GPUProvider.KAGGLE), key)
    assert not _reaches(names.work_bindings(JobType.CLASSIFIER, GPUProvider.COLAB), key)
    assert not _reaches(names.pool_bindings(alice, JobType.CLASSIFIER), key)


def test_pool_keys_are_opaque_and_stable() -> None:
    assert pool_key("alice") == pool_key("alice") != pool_key("bob")
    assert is_pool_key(pool_key("auth0|weird user\x00"))
    assert not is_pool_key("shared")
    assert "alice" not in pool_key("alice")


def test_cancel_binding_matches_the_cancel_routing_key() -> None:
    event = JobCancelRequested(job_id=JOB_ID, reason=CancelReason.USER)

    assert cancel_binding(str(JOB_ID)) == event.routing_key()
