"""The delivery benchmark: K hooks on one account pointing at a local receiver
(``bench.receiver``), events fired through ``POST /_sandbox/events``, at time scale 1,
one worker (the sandbox's in-process one).

Two phases:
- latency: events fired at a steady rate offering 50 deliveries/s (a tenth of the 500/s
  target, so that the latency is the pipeline's and not a backlog's); per delivery,
  the time from sending the event's POST to the receiver getting the first attempt;
- throughput: a burst of events fired as fast as a few clients can; deliveries/s is all
  deliveries over the time from the first event POST to the last first-attempt arrival.
Both clocks are this machine's wall clock (the receiver is another local process).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.servers import (
    Proc,
    Processes,
    Sandbox,
    Starter,
    run_measured,
    start_python_module,
    start_sandbox,
    worker_pid,
)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def _fire(client: httpx.AsyncClient, customer: str, sent: dict[str, float]) -> None:
    t = time.time()
    resp = await client.post(
        "/_sandbox/events", json={"customerId": customer, "event": "call.ended"}
    )
    resp.raise_for_status()
    sent[resp.json()["eventId"]] = t


async def _wait_all(
    receiver: httpx.AsyncClient, expected: int, timeout: float
) -> dict[str, list[Any]]:
    deadline = time.monotonic() + timeout
    while True:
        stats = (await receiver.get("/__stats")).json()
        if len(stats["deliveries"]) >= expected or time.monotonic() > deadline:
            deliveries: dict[str, list[Any]] = stats["deliveries"]
            return deliveries
        await asyncio.sleep(0.1)


def _latencies(sent: dict[str, float], arrived: dict[str, list[Any]]) -> list[float]:
    return [(at - sent[event_id]) * 1000 for event_id, at in arrived.values() if event_id in sent]


async def _run(
    sb: Sandbox, receiver: Proc, hooks: int, burst_events: int, steady_events: int, rate: float
) -> dict[str, Any]:
    customer = sb.create_account("Bench delivery")
    token = sb.token(customer, ["write:hooks"])
    headers = {"Authorization": f"Bearer {sb.admin_token}"}
    async with (
        httpx.AsyncClient(
            base_url=sb.base_url, headers=headers, timeout=60.0, trust_env=False
        ) as client,
        httpx.AsyncClient(base_url=receiver.base_url, timeout=30.0, trust_env=False) as recv,
    ):
        for i in range(hooks):
            resp = await client.post(
                "/v1/hooks",
                json={"event": "call.ended", "target_url": f"{receiver.base_url}/hook/{i}"},
                headers={"Authorization": f"Bearer {token}"},
            )
            resp.raise_for_status()

        # Phase 1: steady rate, latency.
        sent: dict[str, float] = {}
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in range(steady_events):
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(_fire(client, customer, sent)))
        await asyncio.gather(*tasks)
        arrived = await _wait_all(recv, steady_events * hooks, timeout=60)
        steady = _latencies(sent, arrived)
        steady_result = {
            "events": steady_events,
            "events_per_s": rate,
            "deliveries_per_s_offered": rate * hooks,
            "deliveries": len(arrived),
            "p50_ms": round(_pct(steady, 50), 1),
            "p90_ms": round(_pct(steady, 90), 1),
            "p99_ms": round(_pct(steady, 99), 1),
            "mean_ms": round(statistics.fmean(steady), 1) if steady else None,
        }
        await recv.post("/__reset")

        # Phase 2: burst, throughput.
        sent = {}
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(burst_events):
            queue.put_nowait(i)

        async def firer() -> None:
            while not queue.empty():
                queue.get_nowait()
                await _fire(client, customer, sent)

        t0 = time.time()
        await asyncio.gather(*(firer() for _ in range(4)))
        t_fired = time.time() - t0
        expected = burst_events * hooks
        arrived = await _wait_all(recv, expected, timeout=120)
        last = max((at for _, at in arrived.values()), default=t0)
        seconds = last - t0
        burst = _latencies(sent, arrived)
        pending = (
            await client.get(
                "/_sandbox/deliveries",
                params={"status": "pending", "customerId": customer, "limit": "1000"},
            )
        ).json()["count"]
        failed = (
            await client.get(
                "/_sandbox/deliveries",
                params={"status": "failed", "customerId": customer, "limit": "1000"},
            )
        ).json()["count"]
        burst_result = {
            "events": burst_events,
            "fire_seconds": round(t_fired, 3),
            "deliveries_expected": expected,
            "deliveries_received": len(arrived),
            "seconds": round(seconds, 3),
            "deliveries_per_s": round(len(arrived) / seconds, 1) if seconds > 0 else None,
            "latency_p50_ms": round(_pct(burst, 50), 1),
            "latency_p99_ms": round(_pct(burst, 99), 1),
            "pending_after": pending,
            "failed_after": failed,
        }
    return {"hooks": hooks, "steady": steady_result, "burst": burst_result}


def run(
    procs: Processes,
    hooks: int,
    burst_events: int,
    steady_seconds: float,
    steady_deliveries_per_s: float,
    profile_dir: Path | None = None,
    start: Starter = start_sandbox,
    label: str = "delivery",
) -> dict[str, Any]:
    rate = steady_deliveries_per_s / hooks  # events/s
    steady_events = max(1, round(rate * steady_seconds))
    print(
        f"bench: {label} benchmark ({hooks} hooks; {steady_events} events at {rate:g}/s, "
        f"then a burst of {burst_events})",
        flush=True,
    )
    log_dir = procs.tempdir("receiver")
    receiver = start_python_module(procs, "receiver", "bench.receiver", [], log_dir, "/__ready")
    sb = start(procs, label, time_scale=1.0)
    result = run_measured(
        procs,
        sb,
        label,
        profile_dir,
        lambda: _run(sb, receiver, hooks, burst_events, steady_events, rate),
        worker_pid(start),
    )
    s, b = result["steady"], result["burst"]
    print(
        f"bench:   steady: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms over {s['deliveries']} "
        f"deliveries | burst: {b['deliveries_received']}/{b['deliveries_expected']} in "
        f"{b['seconds']} s -> {b['deliveries_per_s']} deliveries/s",
        flush=True,
    )
    procs.close()  # the sandbox (on PostgreSQL: its workers and database), the receiver
    return result
