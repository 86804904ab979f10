"""The long-work benchmark (issue 15, item 2): a 1,000,000-CDR generation runs as a job
(the worker inserts chunks) while ``/healthz`` and ``/v1/me`` are sampled back to back;
their p99 latency over the run must stay ≤ 100 ms, and the sandbox's own loop-lag gauge
(``unlimcall_event_loop_lag_seconds{stat="p99"}`` in ``/metrics``) is reported beside.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx

from bench.delivery import _pct
from bench.servers import Processes, Sandbox, run_measured, start_sandbox
from unlimcall_sandbox.server.settings import ALL_SCOPES

TARGET_P99_MS = 100.0
_LAG = re.compile(r'^unlimcall_event_loop_lag_seconds\{stat="(p99|max)"\} (\S+)$', re.M)


async def _run(sb: Sandbox, count: int) -> dict[str, Any]:
    customer = sb.create_account("bench bulk")
    token = sb.token(customer, list(ALL_SCOPES))
    async with httpx.AsyncClient(base_url=sb.base_url, timeout=30, trust_env=False) as client:
        admin = {"Authorization": f"Bearer {sb.admin_token}"}
        began = time.perf_counter()
        r = await client.post(
            f"/_sandbox/accounts/{customer}/cdrs/generate", json={"count": count}, headers=admin
        )
        accepted_ms = (time.perf_counter() - began) * 1000
        assert r.status_code == 202, r.text
        url = f"/_sandbox/jobs/{r.json()['jobId']}"
        health: list[float] = []
        me: list[float] = []
        job: dict[str, Any] = r.json()
        while job["state"] not in ("done", "failed"):
            for path, into, headers in (
                ("/healthz", health, {}),
                ("/v1/me", me, {"Authorization": f"Bearer {token}"}),
            ):
                t0 = time.perf_counter()
                answer = await client.get(path, headers=headers)
                into.append((time.perf_counter() - t0) * 1000)
                assert answer.status_code == 200, answer.text
            job = (await client.get(url, headers=admin)).json()
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - began
        lag = dict(_LAG.findall((await client.get("/metrics")).text))
    return {
        "count": count,
        "state": job["state"],
        "accepted_ms": round(accepted_ms, 1),
        "seconds": round(elapsed, 1),
        "rows_per_s": round(count / elapsed),
        "samples": len(health),
        "healthz_p99_ms": round(_pct(health, 99), 1),
        "me_p99_ms": round(_pct(me, 99), 1),
        "loop_lag_p99_ms": round(float(lag.get("p99", "nan")) * 1000, 1),
        "loop_lag_max_ms": round(float(lag.get("max", "nan")) * 1000, 1),
    }


def run(procs: Processes, count: int) -> dict[str, Any]:
    print(f"bench: long-work benchmark ({count:,} CDRs generated as a job)", flush=True)
    sb = start_sandbox(procs, "bulk")
    result = run_measured(procs, sb, "bulk", None, lambda: _run(sb, count))
    print(
        f"bench:   {result['count']:,} CDRs in {result['seconds']} s ({result['rows_per_s']:,}/s,"
        f" 202 in {result['accepted_ms']} ms); meanwhile /healthz p99 {result['healthz_p99_ms']}"
        f" ms, /v1/me p99 {result['me_p99_ms']} ms (target ≤ {TARGET_P99_MS:g} ms); loop lag"
        f" p99 {result['loop_lag_p99_ms']} ms",
        flush=True,
    )
    procs.stop(sb.proc)
    return result
