"""Bulk jobs: long control-plane work (CDR generation) run by the worker in chunks, with
its progress in the database (``bulk_jobs``), so ``GET /_sandbox/jobs/{id}``, the CLI and
the dashboard can show done/total/ETA from any process.

Each chunk is one short write transaction that inserts its rows and moves ``done`` on
(only from the ``done`` it started at: a chunk is applied once, even if two workers ran
the job). Rows are built a few at a time with the event loop let in between, so requests served
by the same process never wait for a whole chunk. A run stops after ``SLICE`` seconds and queues
its own continuation, so no arq job runs near its timeout and a crash resumes where the
last chunk ended (chunks are seeded by their offset: the same rows either way).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import select, update

from unlimcall_sandbox.server.clock import iso
from unlimcall_sandbox.server.db.port import Conn
from unlimcall_sandbox.server.db.tables import bulk_jobs, cdrs
from unlimcall_sandbox.server.errors import NotFound
from unlimcall_sandbox.server.job_queue import RUN_BULK_JOB, JobSpec
from unlimcall_sandbox.server.rating import RateTable
from unlimcall_sandbox.server.services.cdrs import GenerationPlan, build_rows
from unlimcall_sandbox.server.structs import BulkJobView

GENERATE_CDRS = "generate_cdrs"
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
CHUNK = 100
"""Rows per chunk (one transaction each: its insert runs on the event loop, ~10-20 ms into
a million-row table)."""
STEP = 50
"""Rows built between two turns of the event loop (a few ms of work)."""
PAUSE = 0.002
"""Real seconds the job sleeps between its units of work. ``sleep(0)`` gives the loop one
turn, yet a request needs several (read, route, answer) and met the job again at each:
with a short real pause every ready request completes in between."""
SLICE = 20.0
"""Wall seconds one job run works before queuing its continuation."""

Opener = Callable[[], AbstractAsyncContextManager[Conn]]


def job_spec(job_id: str, done: int) -> JobSpec:
    return JobSpec(RUN_BULK_JOB, job_id, f"bulk:{job_id}:{done}")


async def start_generation(conn: Conn, plan: GenerationPlan, now_real: float) -> str:
    """Record a CDR generation job (queued); the caller enqueues ``job_spec(id, 0)`` once
    this commits."""
    job_id = str(uuid.uuid4())
    await conn.execute(
        bulk_jobs.insert().values(
            id=job_id,
            kind=GENERATE_CDRS,
            account_id=plan.account_id,
            state=QUEUED,
            done=0,
            total=plan.count,
            params=json.dumps(plan.to_json()),
            error=None,
            created_at=now_real,
            started_at=None,
            updated_at=now_real,
            finished_at=None,
        )
    )
    return job_id


def view_of(r: Any, now_real: float) -> BulkJobView:
    params = json.loads(r.params)
    eta: float | None = None
    if r.state == DONE:
        eta = 0.0
    elif r.started_at is not None and r.done > 0:
        rate = r.done / max(now_real - r.started_at, 1e-6)
        eta = round((r.total - r.done) / rate, 1)
    return BulkJobView(
        jobId=r.id,
        kind=r.kind,
        state=r.state,
        done=int(r.done),
        total=int(r.total),
        etaSeconds=eta,
        customerId=None if r.account_id is None else str(r.account_id),
        count=int(r.total),
        fromTime=iso(params["start"]) if "start" in params else None,
        tillTime=iso(params["till"]) if "till" in params else None,
        createdAt=iso(r.created_at),
        finishedAt=None if r.finished_at is None else iso(r.finished_at),
        error=r.error,
    )


async def get(conn: Conn, job_id: str, now_real: float) -> BulkJobView:
    row = (await conn.execute(select(bulk_jobs).where(bulk_jobs.c.id == job_id[:36]))).first()
    if row is None:
        raise NotFound(f"No job {job_id}.")
    return view_of(row, now_real)


async def _build(
    plan: GenerationPlan, offset: int, n: int, seed: int, rates: RateTable
) -> list[dict[str, Any]]:
    """A chunk's rows, built ``STEP`` at a time with the event loop let in between (a
    thread would hold the GIL against the loop in 5 ms turns: worse for latency)."""
    rng = random.Random(f"{seed}:cdrgen:{plan.account_id}:{plan.first_seq + offset}")
    rows: list[dict[str, Any]] = []
    for start in range(offset, offset + n, STEP):
        rows += build_rows(plan, start, min(STEP, offset + n - start), seed, rates, rng)
        await asyncio.sleep(PAUSE)
    return rows


async def run(
    open_write: Opener,
    job_id: str,
    seed: int,
    rates: RateTable,
    wall: Callable[[], float],
    slice_: float = SLICE,
) -> JobSpec | None:
    """Work on a job for up to ``slice_`` seconds; returns its continuation, or None when
    it is finished (or gone). ``wall`` is the clock's wall time (``Clock.real_now``), which
    the job's timestamps and ETA use."""
    started = time.monotonic()
    async with open_write() as conn:
        row = (await conn.execute(select(bulk_jobs).where(bulk_jobs.c.id == job_id))).first()
        if row is None or row.state in (DONE, FAILED):
            return None
        if row.state == QUEUED:
            now = wall()
            await conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id)
                .values(state=RUNNING, started_at=now, updated_at=now)
            )
    plan = GenerationPlan.from_json(json.loads(row.params))
    done = int(row.done)
    try:
        while done < plan.count:
            if done > row.done and time.monotonic() - started > slice_:
                return job_spec(job_id, done)  # at least one chunk per run
            n = min(CHUNK, plan.count - done)
            rows = await _build(plan, done, n, seed, rates)
            async with open_write() as conn:
                moved = await conn.execute(
                    update(bulk_jobs)
                    .where(bulk_jobs.c.id == job_id, bulk_jobs.c.done == done)
                    .values(done=done + n, updated_at=wall())
                )
                if moved.rowcount != 1:
                    return None  # another run applied this chunk: it carries the job on
                await conn.execute(cdrs.insert(), rows)
            done += n
            await asyncio.sleep(PAUSE)
        async with open_write() as conn:
            now = wall()
            await conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id)
                .values(state=DONE, updated_at=now, finished_at=now)
            )
        return None
    except Exception as exc:
        async with open_write() as conn:
            now = wall()
            await conn.execute(
                update(bulk_jobs)
                .where(bulk_jobs.c.id == job_id)
                .values(state=FAILED, error=str(exc)[:500], updated_at=now, finished_at=now)
            )
        raise


STALL = 30.0
"""Wall seconds without progress after which the sweep queues a job again (its arq job was
lost with Redis; a live run moves ``updated_at`` every chunk)."""


async def stalled(conn: Conn, now_real: float) -> list[JobSpec]:
    """Continuations for queued or running jobs that have not moved for ``STALL`` s."""
    rows = (
        await conn.execute(
            select(bulk_jobs.c.id, bulk_jobs.c.done).where(
                bulk_jobs.c.state.in_((QUEUED, RUNNING)),
                bulk_jobs.c.updated_at < now_real - STALL,
            )
        )
    ).all()
    return [job_spec(r.id, int(r.done)) for r in rows]
