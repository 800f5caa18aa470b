"""The worker's loop outlives its link: whatever a dying channel raises, the loop goes on."""

import asyncio
from typing import Any

from gpu_worker.service_layer.loop import Worker


class FlakyLink:
    """resume_offers raises a bare Exception (as aio-pika may when a channel dies mid-call) the
    first time, then works; offers never come."""

    job_types: list[Any] = []

    def __init__(self) -> None:
        self.revoked = asyncio.Event()
        self.resumed = 0
        self.states: list[str] = []

    def set_state(self, state: str, job_id: object = None) -> None:
        self.states.append(state)

    async def resume_offers(self) -> None:
        self.resumed += 1
        if self.resumed == 1:
            raise Exception()

    async def next_offer(self) -> Any:
        await asyncio.Event().wait()

    async def pause_offers(self) -> None:
        return None


async def test_the_loop_survives_an_unexpected_exception_from_the_link() -> None:
    link = FlakyLink()
    worker = Worker(
        link,  # type: ignore[arg-type]
        toolkit=None,  # type: ignore[arg-type]
        settings=None,  # type: ignore[arg-type]
        display=None,  # type: ignore[arg-type]
    )
    running = asyncio.create_task(worker.run())
    for _ in range(200):
        if link.resumed >= 2:
            break
        await asyncio.sleep(0.05)
    assert link.resumed == 2, "the loop went on after the failure"
    assert not running.done()
    worker.request_shutdown()
    async with asyncio.timeout(10):
        assert await running == []
