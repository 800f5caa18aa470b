import asyncio
import uuid
from typing import Any

from contracts.enums import FailureClass
from contracts.events import JobFailed, JobProgress
from workerlink.reports import ReportOutbox


class FlakyExchange:
    """Fails while `down` is set, like a robust channel during a reconnect."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[tuple[str, Any]] = []

    async def publish(self, message: Any, routing_key: str, **kwargs: Any) -> None:
        if self.down:
            raise ConnectionError("link down")
        self.published.append((routing_key, message))


def progress(job_id: uuid.UUID, value: float, lines: list[str]) -> JobProgress:
    return JobProgress(
        job_id=job_id, attempt=1, worker_id="w", claim_secret="x", progress=value, log_lines=lines
    )


async def test_reports_wait_while_down_coalesce_and_keep_order() -> None:
    exchange = FlakyExchange()
    outbox = ReportOutbox(exchange, source="gpu-worker/w", retry_interval=0.01)  # type: ignore[arg-type]
    outbox.start()
    job = uuid.uuid4()
    for i in range(100):
        outbox.send(progress(job, i, [f"l{i}"]))
    outbox.send(
        JobFailed(
            job_id=job,
            attempt=1,
            worker_id="w",
            claim_secret="x",
            error="boom",
            failure_class=FailureClass.INFRA_ERROR,
            retryable=True,
        )
    )
    assert not await outbox.flush(0.1)
    assert outbox.backlog <= 3
    exchange.down = False
    assert await outbox.flush(5)
    keys = [key for key, _ in exchange.published]
    assert keys[-1] == "job.failed"
    assert set(keys[:-1]) == {"job.progress"}
    assert len(keys) <= 3
    await outbox.close(timeout=1)


async def test_close_gives_up_after_the_timeout() -> None:
    exchange = FlakyExchange()
    outbox = ReportOutbox(exchange, source="gpu-worker/w", retry_interval=0.01)  # type: ignore[arg-type]
    outbox.start()
    outbox.send(progress(uuid.uuid4(), 1, []))
    await asyncio.wait_for(outbox.close(timeout=0.1), 5)
