"""A time budget for work that holds a shared resource (a request's write transaction):
past it the task is cancelled, the work rolls back, and the caller gets a clear 503
instead of every other writer stalling behind it."""

from __future__ import annotations

import asyncio
from types import TracebackType

from unlimcall_sandbox.server.errors import ServiceUnavailable


class BudgetExceeded(ServiceUnavailable):
    """The work ran past its time budget and was rolled back."""


class time_budget:
    """Cancel the current task if the block is still running after ``seconds`` (0 or less:
    no budget); the cancellation leaves the block as ``BudgetExceeded``. A plain ``with``,
    so it may span the ``await``s of an async context manager. (A class rather than a
    generator: every write request passes here.)"""

    __slots__ = ("_expired", "_handle", "_seconds", "_task", "_what")

    def __init__(self, seconds: float, what: str) -> None:
        self._seconds = seconds
        self._what = what
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object]
        self._expired = False

    def __enter__(self) -> None:
        if self._seconds <= 0:
            return
        task = asyncio.current_task()
        if task is not None:
            self._task = task
            self._handle = asyncio.get_running_loop().call_later(self._seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel(f"{self._what} ran past its budget")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is None:
            return
        self._handle.cancel()
        if self._expired and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            self._task.uncancel()
            raise BudgetExceeded(
                f"The {self._what} ran past its {self._seconds:g} s budget "
                "(UNLIMCALL_WRITE_TX_BUDGET) and was rolled back; try again."
            ) from None
