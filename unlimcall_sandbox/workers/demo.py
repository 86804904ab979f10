"""``demo_tick``: one tick of a demo run (``server.services.demo``). It claims the tick,
places a call for every agent of the run that is free and due, and enqueues the next tick;
after the run's end it waits for the run's calls in flight, then marks it finished.

Registered in ``workers.worker`` by its import path. A tick claims its number with a
conditional UPDATE in the same transaction as the calls it places: a duplicate job, or a
recovery kick racing the real one, places nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sqlalchemy import select, update

from unlimcall_sandbox.server.db.tables import demo_runs, hooks
from unlimcall_sandbox.server.db.unit import UnitOfWork, unit_of_work
from unlimcall_sandbox.server.errors import ApiError
from unlimcall_sandbox.server.runtime import Runtime
from unlimcall_sandbox.server.services import calls as call_service
from unlimcall_sandbox.server.services import demo as demo_service
from unlimcall_sandbox.server.services.deps import Deps

log = logging.getLogger("unlimcall.demo")


async def demo_tick(ctx: dict[str, Any], arg: str) -> str:
    rt: Runtime = ctx["rt"]
    run_id, tick = demo_service.parse_job_arg(arg)
    try:
        outcome, again = await _tick(rt, run_id, tick)
    except Exception:  # a database hiccup must not end the run: try this tick again
        log.exception("demo tick %s failed; retrying", arg)
        delay = demo_service.tick_interval(rt.clock.scale)
        await rt.jobs.enqueue(
            [demo_service.tick_job(run_id, tick, delay, f"r{rt.clock.real_now():.0f}")]
        )
        return "retry"
    if again:
        delay = demo_service.tick_interval(rt.clock.scale)
        await rt.jobs.enqueue([demo_service.tick_job(run_id, tick + 1, delay)])
    return outcome


async def _tick(rt: Runtime, run_id: str, tick: int) -> tuple[str, bool]:
    """(what happened, whether another tick follows)."""
    interval = demo_service.tick_interval(rt.clock.scale)
    async with unit_of_work(rt.db, rt.jobs.enqueue) as tx:
        conn = tx.conn
        run = (await conn.execute(select(demo_runs).where(demo_runs.c.id == run_id))).first()
        if run is None:
            return "missing", False
        if run.status == demo_service.FINISHED:
            return "finished", False
        claimed = await conn.execute(
            update(demo_runs)
            .where(demo_runs.c.id == run_id, demo_runs.c.tick == tick)
            .values(tick=tick + 1, next_tick_real=rt.clock.real_now() + interval)
        )
        if claimed.rowcount != 1:
            return "taken", False  # another job runs this chain
        now = rt.clock.now()
        account = await demo_service.account_of(conn, run)
        if account is None:
            await _finish(tx, run, now, "The demo's account no longer exists (reset?).")
            outcome, again = "account gone", False
        elif now < run.ends_at and run.status == demo_service.RUNNING:
            placed, error = await _place_due(tx, rt.deps, run, now)
            values: dict[str, Any] = {"calls_placed": run.calls_placed + placed}
            if error is not None:
                values["last_error"] = error
            await conn.execute(update(demo_runs).where(demo_runs.c.id == run_id).values(**values))
            outcome, again = f"placed {placed}", True
        elif await demo_service.in_flight(conn, run):
            if run.status != demo_service.WINDING_DOWN:
                await conn.execute(
                    update(demo_runs)
                    .where(demo_runs.c.id == run_id)
                    .values(status=demo_service.WINDING_DOWN)
                )
            outcome, again = "winding down", True
        else:
            await _finish(tx, run, now, None)
            outcome, again = "finished", False
    return outcome, again


async def _place_due(tx: UnitOfWork, deps: Deps, run: Any, now: float) -> tuple[int, str | None]:
    """Place a call for each free agent whose next call is due; (placed, last error)."""
    agent_ids: list[int] = json.loads(run.agent_ids)
    latest = await demo_service.latest_calls(tx.conn, run.account_id)
    seed = deps.seed
    placed, error = 0, None
    for index, agent_id in enumerate(agent_ids):
        due = demo_service.next_call_at(run, index, latest.get(agent_id))
        if due is None or due > now:
            continue
        number = demo_service.destination(seed, run.id, run.calls_placed + placed)
        body = {"aiAgentId": str(agent_id), "toNumber": number, "metadata": {"demo": run.id}}
        try:
            await call_service.originate(tx, deps, run.account_id, body)
        except ApiError as exc:  # the account was suspended, spent, unprovisioned, ...
            error = f"{exc.code}: {exc.message}"
            break
        placed += 1
    return placed, error


async def _finish(tx: UnitOfWork, run: Any, now: float, error: str | None) -> None:
    values: dict[str, Any] = {
        "status": demo_service.FINISHED,
        "finished_at": now,
        "next_tick_real": None,
    }
    if error is not None:
        values["last_error"] = error
    await tx.conn.execute(update(demo_runs).where(demo_runs.c.id == run.id).values(**values))
    if not run.created_account and error is None:
        # A chosen account keeps nothing of the demo: its hooks to the demo inbox go.
        await tx.conn.execute(
            update(hooks)
            .where(
                hooks.c.account_id == run.account_id,
                hooks.c.target_url.like(f"%/_sandbox/inbox/{run.inbox}"),
                hooks.c.active.is_(True),
            )
            .values(active=False, disabled_at=now)
        )
