"""A time budget for work that holds a shared resource (a request's write transaction):
past it the task is cancelled, the work rolls back, and the caller gets a clear 503
instead of every other writer stalling behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from unlimcall_sandbox.server.errors import ServiceUnavailable


class BudgetExceeded(ServiceUnavailable):
    """The work ran past its time budget and was rolled back."""


@contextmanager
def time_budget(seconds: float, what: str) -> Iterator[None]:
    """Cancel the current task if the block is still running after ``seconds`` (0 or less:
    no budget); the cancellation leaves the block as ``BudgetExceeded``. A plain ``with``,
    so it may span the ``yield`` of an async context manager."""
    task = asyncio.current_task()
    if seconds <= 0 or task is None:
        yield
        return
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel(f"{what} ran past its budget")

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except asyncio.CancelledError:
        if not expired:
            raise
        task.uncancel()
        raise BudgetExceeded(
            f"The {what} ran past its {seconds:g} s budget (UNLIMCALL_WRITE_TX_BUDGET) and "
            "was rolled back; try again."
        ) from None
    finally:
        handle.cancel()
