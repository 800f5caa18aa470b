"""FairSlots: admission strictly first come, first served, and no slot lost to cancellation."""

import asyncio

import pytest

from servicekit.uow import FairSlots


async def test_waiters_are_admitted_in_arrival_order() -> None:
    slots = FairSlots(1)
    order: list[int] = []
    await slots.acquire()

    async def waiter(i: int) -> None:
        async with slots.held():
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(waiter(i)) for i in range(5)]
    await asyncio.sleep(0)
    slots.release()
    # A newcomer arriving while the first waiter is being woken must queue behind it.
    late = asyncio.create_task(waiter(99))
    await asyncio.gather(*tasks, late)
    assert order == [0, 1, 2, 3, 4, 99]
    assert slots.in_use == 0


async def test_a_cancelled_waiter_gives_its_slot_on() -> None:
    slots = FairSlots(1)
    await slots.acquire()
    cancelled = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    nxt = asyncio.create_task(slots.acquire())
    await asyncio.sleep(0)
    slots.release()  # handed to `cancelled`, which is cancelled before it runs
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await asyncio.wait_for(nxt, 1)
    assert slots.in_use == 1
    slots.release()
    assert slots.in_use == 0


def test_a_pool_needs_a_slot() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        FairSlots(0)
