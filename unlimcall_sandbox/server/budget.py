"""Deadlines for work that holds something others wait for (a request's write transaction,
the read of a request's body): past its deadline the task is cancelled, and the block
leaves with a clear error instead of every other request stalling behind it.

Every deadline of an event loop shares one timer (``_Watchdog``): a guarded block costs a
dict entry, not a timer of its own (a timer each — ``asyncio.timeout``, ``call_later`` —
was ~7 µs of a placement's CPU), and a deadline fires up to ``TICK`` seconds late.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from unlimcall_sandbox.server.errors import ServiceUnavailable

TICK = 0.05
"""Seconds between two looks at the deadlines: how late one may fire."""


class BudgetExceeded(ServiceUnavailable):
    """The work ran past its time budget and was rolled back."""


class _Watchdog:
    """The deadlines of one event loop, looked at every ``TICK`` while there are any."""

    def __init__(self) -> None:
        # No reference to the loop, not even through the pending timer's handle: the loop
        # is this watchdog's weak key in _WATCHDOGS.
        self._due: dict[deadline, float] = {}
        self.armed = False

    def watch(self, guard: deadline, loop: asyncio.AbstractEventLoop, at: float) -> None:
        self._due[guard] = at
        if not self.armed:
            self.armed = True
            loop.call_at(loop.time() + TICK, self._look)

    def forget(self, guard: deadline) -> None:
        self._due.pop(guard, None)

    def _look(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for guard in [g for g, at in self._due.items() if at <= now]:
            del self._due[guard]
            guard.expire()
        self.armed = bool(self._due)
        if self.armed:
            loop.call_at(now + TICK, self._look)


_WATCHDOGS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchdog] = (
    weakref.WeakKeyDictionary()
)


def _watchdog(loop: asyncio.AbstractEventLoop) -> _Watchdog:
    dog = _WATCHDOGS.get(loop)
    if dog is None:
        dog = _WATCHDOGS[loop] = _Watchdog()
    return dog


class deadline:  # used as a function: ``with deadline(...)``
    """Cancel the current task if the block is still running ``seconds`` from now (0 or
    less: never); the cancellation leaves the block as ``error()``. A plain ``with``, so it
    may span the ``await``s of an async context manager. Another cancellation stays one."""

    __slots__ = ("_dog", "_error", "_expired", "_seconds", "_task")

    def __init__(self, seconds: float, error: Callable[[], BaseException]) -> None:
        self._seconds = seconds
        self._error = error
        self._dog: _Watchdog | None = None
        self._expired = False
        self._task: asyncio.Task[Any]

    def __enter__(self) -> None:
        if self._seconds <= 0:
            return
        task = asyncio.current_task()
        if task is not None:
            self._task = task
            loop = task.get_loop()
            self._dog = _watchdog(loop)
            self._dog.watch(self, loop, loop.time() + self._seconds)

    def expire(self) -> None:
        self._expired = True
        self._task.cancel("past its deadline")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._dog is None:
            return
        self._dog.forget(self)
        if self._expired and exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            self._task.uncancel()
            raise self._error() from None


def time_budget(seconds: float, what: str) -> deadline:
    """The budget of work that holds a shared resource: past it, ``BudgetExceeded``."""

    def exceeded() -> BaseException:
        return BudgetExceeded(
            f"The {what} ran past its {seconds:g} s budget (UNLIMCALL_WRITE_TX_BUDGET) and "
            "was rolled back; try again."
        )

    return deadline(seconds, exceeded)
