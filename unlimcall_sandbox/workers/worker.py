"""Building arq workers: in-process beside the API (``serve``) or standalone (``worker``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from arq.worker import Worker, func

from unlimcall_sandbox.server.egress import Egress
from unlimcall_sandbox.server.job_queue import (
    DELIVER_EVENT,
    DELIVER_WEBHOOK,
    QUEUE,
    RUN_BULK_JOB,
    SIMULATE_CALL,
    redis_settings,
)
from unlimcall_sandbox.server.metrics import SharedCounters
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.workers.delivery import IN_FLIGHT, Deliverer, Slots
from unlimcall_sandbox.workers.jobs import (
    deliver_event,
    deliver_webhook,
    run_bulk_job,
    simulate_call,
    sweep_forever,
)
from unlimcall_sandbox.workers.resolver import Resolver, system_resolver, webhook_session

MAX_JOBS = 200
JOB_TIMEOUT = 60


def make_worker(
    rt: Runtime,
    *,
    burst: bool = False,
    handle_signals: bool = False,
    resolver: Resolver = system_resolver,
) -> Worker:
    """``resolver`` looks up webhook target names (tests inject one that never does)."""
    egress = Egress.parse(rt.settings.webhook_egress, rt.settings.webhook_allow)

    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["rt"] = rt
        # Webhooks go out through aiohttp: httpx's connection pool cost ~4 ms of CPU per
        # request at a hundred concurrent deliveries (aiohttp: ~0.3 ms), which capped
        # delivery throughput.
        ctx["http"] = webhook_session(egress, resolver, IN_FLIGHT)
        ctx["deliverer"] = deliverer = Deliverer.of(rt, ctx["http"], egress, Slots(IN_FLIGHT))
        waiting = deliverer.fair.is_waiting
        ctx["sweeper"] = None if burst else asyncio.create_task(sweep_forever(rt, waiting))
        # /metrics of any API process: attempts and jobs by outcome, over every worker.
        ctx["counters"] = counters = SharedCounters(rt.redis)
        counters.track("delivery_attempts", lambda: deliverer.outcomes)
        counters.track(
            "jobs",
            lambda: {
                "complete": worker.jobs_complete,
                "retried": worker.jobs_retried,
                "failed": worker.jobs_failed,
            },
        )
        counters.start()

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        if "counters" in ctx:
            await ctx["counters"].close()
        sweeper = ctx.get("sweeper")
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if "deliverer" in ctx:
            await ctx["deliverer"].fair.close()
        if "http" in ctx:
            await ctx["http"].close()

    worker = Worker(
        functions=[
            func(simulate_call, name=SIMULATE_CALL, max_tries=1000),
            func(deliver_webhook, name=DELIVER_WEBHOOK, max_tries=1000),
            func(deliver_event, name=DELIVER_EVENT, max_tries=1000),
            func(run_bulk_job, name=RUN_BULK_JOB, max_tries=1000),
            func("unlimcall_sandbox.workers.demo.demo_tick", name="demo_tick", max_tries=1000),
        ],
        queue_name=QUEUE,
        # Its own connection pool: arq closes the pool it runs on.
        redis_settings=redis_settings(rt.redis_url),
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        burst=burst,
        handle_signals=handle_signals,
        max_jobs=MAX_JOBS,
        job_timeout=JOB_TIMEOUT,
        keep_result=0,
        poll_delay=0.05,
        max_tries=1000,
        retry_jobs=True,
    )
    return worker


SHUTDOWN_GRACE = 5.0


async def stop_worker(worker: Worker, main: asyncio.Task[None] | None) -> None:
    """Stop polling, give running jobs a few seconds, cancel the rest (their work stays
    due in the database and is resumed), run on_shutdown, close the pool."""
    if main is not None:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
    running = [t for t in worker.tasks.values() if not t.done()]
    if running:
        _, pending = await asyncio.wait(running, timeout=SHUTDOWN_GRACE)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    if worker.on_shutdown is not None:
        await worker.on_shutdown(worker.ctx)
    if worker._pool is not None:
        await worker._pool.aclose(close_connection_pool=True)
        worker._pool = None


@asynccontextmanager
async def in_process_worker(
    rt: Runtime, resolver: Resolver = system_resolver
) -> AsyncIterator[Worker]:
    """Run a worker as a task for as long as the context is open (``serve``)."""
    worker = make_worker(rt, resolver=resolver)
    task = asyncio.create_task(worker.async_run())
    try:
        yield worker
    finally:
        await stop_worker(worker, task)
