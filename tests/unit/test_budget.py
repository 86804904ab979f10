"""The write-transaction budget: work still running past it leaves as BudgetExceeded."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from unlimcall_sandbox.server import budget
from unlimcall_sandbox.server.budget import BudgetExceeded, deadline, time_budget


async def test_work_past_its_budget_is_cancelled_with_a_clear_error() -> None:
    never = asyncio.Event()
    with pytest.raises(BudgetExceeded, match="budget"), time_budget(0.01, "write transaction"):
        await never.wait()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0


async def test_work_within_its_budget_is_left_alone() -> None:
    with time_budget(60, "write transaction"):
        await asyncio.sleep(0)
    with time_budget(0, "write transaction"):  # 0: no budget
        await asyncio.sleep(0)


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    started = asyncio.Event()

    async def work() -> None:
        with time_budget(60, "write transaction"):
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


class Late(Exception):
    pass


async def test_deadlines_share_one_timer_and_each_leaves_with_its_own_error() -> None:
    """Blocks of several tasks, nested ones too: each past its deadline leaves with its own
    error; one that ends in time is never cancelled, and the timer stops once none is left."""
    release = asyncio.Event()

    async def guarded(seconds: float, tag: str) -> str:
        with deadline(seconds, lambda: Late(tag)):
            await release.wait()
        return tag

    async def nested() -> str:
        with deadline(60, lambda: Late("outer")), deadline(0.02, lambda: Late("inner")):
            await release.wait()
        return "nested"

    late = [asyncio.create_task(guarded(0.02, "a")), asyncio.create_task(guarded(0.04, "b"))]
    inner = asyncio.create_task(nested())
    patient = asyncio.create_task(guarded(60, "patient"))
    for task, tag in [(late[0], "a"), (late[1], "b"), (inner, "inner")]:
        with pytest.raises(Late, match=tag):
            await task
    release.set()
    assert await patient == "patient"
    dog = budget._WATCHDOGS[asyncio.get_running_loop()]
    assert dog._due == {}
    for _ in range(100):  # the pending look finds nothing and is not renewed
        if not dog.armed:
            break
        await asyncio.sleep(budget.TICK / 5)
    assert not dog.armed


def test_a_closed_loops_watchdog_goes_with_it() -> None:
    """The watchdog holds no reference to its loop (its timer pending or not): event loops
    that ran deadlines are freed once closed, and their watchdogs with them."""
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def guarded() -> None:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        with time_budget(60, "write transaction"):
            await asyncio.sleep(0)

    for _ in range(3):
        asyncio.run(guarded())
    gc.collect()
    assert [ref() for ref in loops] == [None, None, None]  # weak keys: their entries too
