"""The write-transaction budget: work still running past it leaves as BudgetExceeded."""

from __future__ import annotations

import asyncio

import pytest

from unlimcall_sandbox.server.budget import BudgetExceeded, time_budget


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
