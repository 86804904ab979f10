"""Prometheus metrics in the text exposition format, without a client library.

Request counters and latency histograms are per process (each API process is scraped on
its own, as Prometheus expects). Calls by state, deliveries by status and the job queue
depth are read from the database and Redis at scrape time, so every process reports the
same shared truth.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

from sqlalchemy import func, select

from unlimcall_sandbox.server.db.engine import read
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


async def render(rt: Runtime, requests: RequestMetrics) -> str:
    lines = requests.render()
    async with read(rt.engine) as conn:
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
