"""The lifecycle benchmark: N calls at the maximum time scale through the one in-process
worker, end to end (first POST /v1/calls → every call ``ended``), and lost calls.

"Ended" is read from the CDRs (one per call, written in the transaction that ends it),
counted through ``/v1/cdrs`` with a wide window, paged by ``till`` (at most 1000 rows per
page, at most 31 sandbox days per window). While calls are still running only the
last-posted few are polled (``GET /_sandbox/calls/{id}``), so that polling costs the
process under test next to nothing; the CDR count then confirms (or keeps polling).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import rawclient
from bench.servers import (
    Processes,
    Sandbox,
    Starter,
    run_measured,
    session_ticks,
    start_sandbox,
    worker_pid,
)

TIME_SCALE = 100_000.0
WINDOW = 30 * 86400.0  # sandbox seconds per /v1/cdrs window (the API allows 31 days)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ts(raw: str) -> float:
    return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()


async def count_cdrs(client: httpx.AsyncClient, token: str, since: float, now: float) -> int:
    """Distinct CDRs of the token's account with startTime in [since, now]."""
    seen: set[str] = set()
    headers = {"Authorization": f"Bearer {token}"}
    hi = now
    while hi > since:
        lo = max(since, hi - WINDOW)
        till = hi
        while True:
            resp = await client.get(
                "/v1/cdrs",
                params={"from": _iso(lo), "till": _iso(till), "limit": "1000"},
                headers=headers,
            )
            resp.raise_for_status()
            calls = resp.json()["calls"]
            seen.update(c["id"] for c in calls)
            if len(calls) < 1000:
                break
            oldest = min(_ts(c["startTime"]) for c in calls)
            till = oldest if oldest < till else till - 1.0
            if till <= lo:
                break
        hi = lo
    return len(seen)


async def _run(sb: Sandbox, n_calls: int, concurrency: int, timeout: float) -> dict[str, Any]:
    customer = sb.create_account("Bench lifecycle")
    token = sb.token(customer, ["write:calls", "read:cdrs"])
    agent = sb.agent(customer)
    since = sb.sandbox_now() - 60.0
    admin = {"Authorization": f"Bearer {sb.admin_token}"}
    body = {"aiAgentId": agent, "toNumber": "+14155551234"}
    call_ids: list[str] = []
    failures: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=sb.base_url, limits=limits, timeout=60.0, trust_env=False
    ) as client:
        # The POSTs go through bench.rawclient: with httpx the client was the bottleneck.
        post = rawclient.request_bytes(
            "POST",
            sb.base_url,
            "/v1/calls",
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )
        t0 = time.perf_counter()
        outcome = await rawclient.send_many(sb.base_url, lambda _: post, n_calls, concurrency)
        t_posted = time.perf_counter() - t0
        failures.update(outcome.errors)
        for answer in outcome.answers:
            if answer.status == 200:
                call_ids.append(answer.json()["callId"])
            else:
                key = f"HTTP {answer.status}"
                failures[key] = failures.get(key, 0) + 1
        deadline = time.perf_counter() + timeout

        async def ended(call_id: str) -> bool:
            resp = await client.get(f"/_sandbox/calls/{call_id}", headers=admin)
            return resp.status_code == 200 and resp.json()["state"] == "ended"

        tail = call_ids[-5:]
        while time.perf_counter() < deadline:
            if all(await asyncio.gather(*(ended(c) for c in tail))):
                break
            await asyncio.sleep(0.05)
        count = 0
        t_done: float | None = None
        while True:
            t_check = time.perf_counter() - t0
            count = await count_cdrs(client, token, since, sb.sandbox_now() + 86400.0)
            if count >= len(call_ids):
                t_done = t_check
                break
            if time.perf_counter() >= deadline:
                break
            await asyncio.sleep(0.25)
        not_ended: list[str] = []
        if count < len(call_ids):
            states = await asyncio.gather(*(ended(c) for c in call_ids[:2000]))
            not_ended = [c for c, ok in zip(call_ids, states, strict=False) if not ok]
    lost = len(call_ids) - count + sum(failures.values())
    return {
        "calls": n_calls,
        "time_scale": TIME_SCALE,
        "post_concurrency": concurrency,
        "accepted": len(call_ids),
        "post_failures": failures,
        "post_seconds": round(t_posted, 3),
        "post_rate": round(len(call_ids) / t_posted, 1) if t_posted else 0.0,
        "cdrs": count,
        "end_to_end_seconds": None if t_done is None else round(t_done, 3),
        "calls_per_s": None if t_done is None else round(count / t_done, 1),
        "lost": lost,
        "not_ended_sample": not_ended[:10],
    }


def run(
    procs: Processes,
    n_calls: int,
    timeout: float,
    profile_dir: Path | None = None,
    start: Starter = start_sandbox,
    label: str = "lifecycle",
) -> dict[str, Any]:
    print(f"bench: {label} benchmark ({n_calls} calls, time scale {TIME_SCALE:g})", flush=True)
    sb = start(procs, label, time_scale=TIME_SCALE)
    ticks = session_ticks(sb, start)
    result = run_measured(
        procs,
        sb,
        label,
        profile_dir,
        lambda: _run(sb, n_calls, concurrency=32, timeout=timeout),
        worker_pid(start),
    )
    cpu_s = (session_ticks(sb, start) - ticks) / 100
    result["cpu_seconds"] = round(cpu_s, 2)
    result["calls_per_cpu_s"] = round(result["cdrs"] / cpu_s, 1) if cpu_s > 0 else None
    print(
        f"bench:   {result['cdrs']}/{result['accepted']} ended in "
        f"{result['end_to_end_seconds']} s -> {result['calls_per_s']} calls/s, "
        f"lost {result['lost']} (POSTs at {result['post_rate']}/s; "
        f"{result['cpu_seconds']} CPU s -> {result['calls_per_cpu_s']} calls per CPU s)",
        flush=True,
    )
    procs.close()  # the sandbox, and on PostgreSQL its workers and database
    return result
