"""The unit of work: one write transaction, and what waits for its commit.

Services receive a ``UnitOfWork`` (never the web layer's request object): they write
through ``conn`` and queue what must only happen once the change is durable — jobs to
enqueue (``after_commit``) and cache invalidations (``on_commit``). Whoever opened the
transaction (a request's dependency, a worker job) runs ``committed`` after the commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from unlimcall_sandbox.server.db.port import Conn, Database
from unlimcall_sandbox.server.job_queue import JobSpec

Enqueue = Callable[[list[JobSpec]], Awaitable[object]]
"""How queued jobs leave once the transaction committed (``JobQueue.enqueue``)."""
Submit = Callable[[list[JobSpec]], None]
"""The same without waiting for Redis (``JobQueue.submit``)."""


@dataclass
class UnitOfWork:
    """One write transaction, and the work to run once it has committed."""

    conn: Conn
    after_commit: list[JobSpec] = field(default_factory=list)
    """Jobs to enqueue once the transaction committed (never for rolled-back work)."""
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    """Cache invalidations: run only once the change is visible to other connections,
    or a concurrent refresh could cache the old state again."""


@asynccontextmanager
async def unit_of_work(db: Database, enqueue: Enqueue) -> AsyncIterator[UnitOfWork]:
    """A write transaction: committed when the block ends, rolled back when it raises;
    what waits for the commit (cache invalidations, queued jobs) runs after it."""
    async with db.write() as conn:
        uow = UnitOfWork(conn)
        yield uow
    await committed(uow, enqueue)


async def committed(uow: UnitOfWork, enqueue: Enqueue) -> None:
    """What follows a commit: cache invalidations, then the jobs the transaction queued."""
    for callback in uow.on_commit:
        callback()
    if uow.after_commit:
        await enqueue(uow.after_commit)


def committed_soon(uow: UnitOfWork, submit: Submit) -> None:
    """``committed`` for a request: its jobs are handed over, not waited for (its answer
    never waits on Redis; a job lost before it is sent is found again by the sweep)."""
    for callback in uow.on_commit:
        callback()
    if uow.after_commit:
        submit(uow.after_commit)
