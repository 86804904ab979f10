"""Prometheus metrics in the text exposition format, without a client library.

Request counters and latency histograms are per process (each API process is scraped on
its own, as Prometheus expects). Calls by state, deliveries by status and the job queue
depth are read from the database and Redis at scrape time, so every process reports the
same shared truth.
"""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from collections import defaultdict, deque

from sqlalchemy import func, select

from unlimcall_sandbox.server.db.tables import calls, deliveries
from unlimcall_sandbox.server.job_queue import QUEUE
from unlimcall_sandbox.server.runtime import Runtime

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class RequestMetrics:
    """Counts and latency histograms by (method, route template, status)."""

    def __init__(self) -> None:
        self.count: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        route = route or "unmatched"
        self.count[(method, route, status)] += 1
        key = (method, route)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] += seconds

    def render(self) -> list[str]:
        lines = [
            "# HELP unlimcall_http_requests_total HTTP requests by method, route and status.",
            "# TYPE unlimcall_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.count.items()):
            lines.append(
                f'unlimcall_http_requests_total{{method="{method}",route="{_esc(route)}",'
                f'status="{status}"}} {n}'
            )
        lines += [
            "# HELP unlimcall_http_request_duration_seconds Request latency.",
            "# TYPE unlimcall_http_request_duration_seconds histogram",
        ]
        for (method, route), counts in sorted(self.buckets.items()):
            labels = f'method="{method}",route="{_esc(route)}"'
            running = 0
            for bound, n in zip(BUCKETS, counts, strict=False):
                running += n
                lines.append(
                    f'unlimcall_http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                    f"{running}"
                )
            total = running + counts[-1]
            lines.append(
                f'unlimcall_http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}'
            )
            lines.append(
                f"unlimcall_http_request_duration_seconds_sum{{{labels}}} "
                f"{self.sums[(method, route)]:.6f}"
            )
            lines.append(f"unlimcall_http_request_duration_seconds_count{{{labels}}} {total}")
        return lines


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def render(rt: Runtime, requests: RequestMetrics, lag: LoopLag | None = None) -> str:
    lines = requests.render()
    if lag is not None:
        lines += lag.render()
    async with rt.db.read() as conn:
        by_state = (
            await conn.execute(select(calls.c.state, func.count()).group_by(calls.c.state))
        ).all()
        by_status = (
            await conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
        ).all()
    lines += [
        "# HELP unlimcall_calls Calls by lifecycle state (shared database).",
        "# TYPE unlimcall_calls gauge",
        *(f'unlimcall_calls{{state="{s}"}} {n}' for s, n in sorted(by_state)),
        "# HELP unlimcall_deliveries Webhook deliveries by status (shared database).",
        "# TYPE unlimcall_deliveries gauge",
        *(f'unlimcall_deliveries{{status="{s}"}} {n}' for s, n in sorted(by_status)),
    ]
    try:
        depth = int(await rt.redis.zcard(QUEUE))
        lines += [
            "# HELP unlimcall_queue_depth Jobs waiting in the arq queue (incl. deferred).",
            "# TYPE unlimcall_queue_depth gauge",
            f"unlimcall_queue_depth {depth}",
        ]
    except Exception:
        lines += ["# TYPE unlimcall_redis_up gauge", "unlimcall_redis_up 0"]
    return "\n".join(lines) + "\n"


class LoopLag:
    """Event-loop lag, measured by a background task: how late a timer set for ``interval``
    seconds fires. Keeps the samples of the last ``window`` seconds; ``render`` exports the
    latest and the p99 of the window as gauges (``unlimcall_event_loop_lag_seconds``)."""

    def __init__(self, interval: float = 0.01, window: float = 60.0) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=max(1, int(window / interval)))
        self.current = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(self.interval)
            self.current = max(0.0, loop.time() - started - self.interval)
            self.samples.append(self.current)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def p99(self) -> float:
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]

    def render(self) -> list[str]:
        worst = max(self.samples, default=0.0)
        return [
            "# HELP unlimcall_event_loop_lag_seconds How late the event loop runs a timer: "
            "the latest sample and the p99 over the window.",
            "# TYPE unlimcall_event_loop_lag_seconds gauge",
            f'unlimcall_event_loop_lag_seconds{{stat="current"}} {self.current:.6f}',
            f'unlimcall_event_loop_lag_seconds{{stat="p99"}} {self.p99():.6f}',
            f'unlimcall_event_loop_lag_seconds{{stat="max"}} {worst:.6f}',
            "# HELP unlimcall_event_loop_lag_window_samples Samples in the lag window.",
            "# TYPE unlimcall_event_loop_lag_window_samples gauge",
            f"unlimcall_event_loop_lag_window_samples {len(self.samples)}",
        ]
