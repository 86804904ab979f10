"""``Slots``: the in-flight webhook attempts of a worker."""

from __future__ import annotations

import asyncio

from unlimcall_sandbox.workers.delivery import Slots


async def test_take_is_bounded_and_waits_for_a_free_slot() -> None:
    slots = Slots(3)
    assert await slots.take(2) == 2
    assert await slots.take(5) == 1  # only one left: a batch takes what there is
    waiter = asyncio.ensure_future(slots.take(4))
    for _ in range(10):  # let it run as far as it can: it parks on the condition
        await asyncio.sleep(0)
    assert not waiter.done()  # none free
    await slots.give(2)
    assert await waiter == 2
    assert slots.free == 0
    await slots.give(3)
    assert slots.free == 3
