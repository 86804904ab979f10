"""Prometheus metrics (``prometheus_client``), right under ``api --workers N``.

What a process counts itself — requests and their latency, its event loop's lag, its CPU,
memory and file descriptors — is kept in prometheus_client values. In one process
(``serve``, ``api``) they are this process's. Under ``api --workers N`` the CLI runs the
API processes in prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, a
fresh directory per run): each process writes its values to files there, and whichever
process answers a scrape reads them all, so counters are the sums over every process
(those that exited included) and never go backwards from one scrape to the next:

- ``unlimcall_http_requests_total``, ``unlimcall_http_request_duration_seconds``: summed;
- ``unlimcall_event_loop_lag_seconds{stat}``, ``..._window_samples``: the largest value
  among the live processes (``livemax``): the same series as with one process;
- ``process_cpu_seconds_total``: summed over every API process, exited ones included;
  ``process_resident_memory_bytes``, ``process_virtual_memory_bytes``,
  ``process_open_fds``: summed over the live ones; ``process_start_time_seconds``: the
  oldest live one's; ``unlimcall_api_processes``: how many are live. (With one process:
  prometheus_client's own process collector, the same names.)

The request path only adds to plain dicts (as cheap as before: ≈1 µs); ``publish()``
moves the counts into the prometheus_client values — before this process answers a scrape,
and every ``PUBLISH_INTERVAL`` seconds in multiprocess mode, so another process's requests
show up at most that late.

Read at scrape time from the shared stores, so every process reports the same truth:
calls by state and deliveries by status (database), the job queue's depth (Redis), and
the counters the workers keep in Redis (``SharedCounters``): webhook delivery attempts
by outcome and arq jobs by outcome, summed over every worker process.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import tempfile
import weakref
from bisect import bisect_left
from collections import defaultdict, deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Literal

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from prometheus_client import values as prometheus_values
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import func, select

from unlimcall_sandbox.server.db.tables import calls, deliveries
from unlimcall_sandbox.server.job_queue import QUEUE

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from unlimcall_sandbox.server.runtime import Runtime

# Typed names for prometheus_client's untyped functions.
_disable_created: Callable[[], None] = prometheus_client.disable_created_metrics
_mark_process_dead: Callable[[int, str], None] = _multiprocess.mark_process_dead
_multiprocess_collector: Callable[[CollectorRegistry, str], object] = (
    _multiprocess.MultiProcessCollector
)

# No ``*_created`` series: they double the output and nothing here reads them.
_disable_created()

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_INTERVAL = 1.0
"""Seconds between two publications of a process's counts in multiprocess mode."""

SHARED_KEY = "unlimcall:metrics"
"""The Redis hash of the workers' counters (``SharedCounters``)."""
DELIVERY_OUTCOMES = ("delivered", "retry", "permanent", "exhausted")
JOB_OUTCOMES = ("complete", "retried", "failed")


def multiprocess_dir() -> str | None:
    """The directory of prometheus_client's multiprocess mode, when this process is in it
    (the variable was set before prometheus_client was imported)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and getattr(prometheus_values.ValueClass, "_multiprocess", False):
        return path
    return None


@contextlib.contextmanager
def multiprocess_run() -> Iterator[str]:
    """For the parent of several API processes, before it starts them: a directory for
    multiprocess mode in ``PROMETHEUS_MULTIPROC_DIR`` (the processes inherit it), empty
    at the start; removed at the end. A directory given in that variable is used (and
    emptied of the last run's files) instead."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.unlink(stale)
        yield given
        return
    path = tempfile.mkdtemp(prefix="unlimcall-metrics-")
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(path, ignore_errors=True)


def process_exited(pid: int) -> None:
    """A process of the run is gone: its live gauges leave the sums (its counters stay)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        _mark_process_dead(pid, path)


# -- what a process counts itself ----------------------------------------------------------


class RequestMetrics:
    """Counts and latency histograms by (method, route template, status): added up in
    dicts on the request path, moved into prometheus_client values by ``publish``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.count: dict[tuple[str, str, int], int] = defaultdict(int)
        self.buckets: dict[tuple[str, str], list[int]] = {}
        self.sums: dict[tuple[str, str], float] = defaultdict(float)
        self._requests = Counter(
            "unlimcall_http_requests",
            "HTTP requests by method, route and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "unlimcall_http_request_duration_seconds",
            "Request latency.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        route = route or "unmatched"
        self.count[(method, route, status)] += 1
        key = (method, route)
        counts = self.buckets.get(key)
        if counts is None:
            counts = self.buckets[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect_left(BUCKETS, seconds)] += 1
        self.sums[key] += seconds

    def publish(self) -> None:
        """Add what was counted since the last call to the prometheus_client values."""
        count, self.count = self.count, defaultdict(int)
        buckets, self.buckets = self.buckets, {}
        sums, self.sums = self.sums, defaultdict(float)
        for (method, route, status), n in count.items():
            self._requests.labels(method, route, str(status)).inc(n)
        for (method, route), added in buckets.items():
            child = self._latency.labels(method, route)
            # Many observations at once: bucket by bucket (``observe`` adds one).
            for value, n in zip(child._buckets, added, strict=True):
                if n:
                    value.inc(n)
            child._sum.inc(sums[(method, route)])


class LoopLag:
    """Event-loop lag, measured by a background task: how late a timer set for ``interval``
    seconds fires. Keeps the samples of the last ``window`` seconds; ``publish`` sets the
    latest, the p99 and the max of the window as gauges (``unlimcall_event_loop_lag_seconds``).
    """

    def __init__(
        self,
        interval: float = 0.01,
        window: float = 60.0,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.interval = interval
        self.samples: deque[float] = deque(maxlen=max(1, int(window / interval)))
        self.current = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lag = Gauge(
            "unlimcall_event_loop_lag_seconds",
            "How late the event loop runs a timer: the latest sample, the p99 and the max "
            "over the window (several processes: the largest of the live ones).",
            ["stat"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self._samples = Gauge(
            "unlimcall_event_loop_lag_window_samples",
            "Samples in the lag window.",
            registry=registry,
            multiprocess_mode="livemax",
        )

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

    def publish(self) -> None:
        self._lag.labels("current").set(self.current)
        self._lag.labels("p99").set(self.p99())
        self._lag.labels("max").set(max(self.samples, default=0.0))
        self._samples.set(len(self.samples))


class ProcessMetrics:
    """CPU, memory and open files of this process. Alone: prometheus_client's process
    collector, read at scrape. In multiprocess mode: its readings published as this
    process's share of the sums (see the module's docstring)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._reader = ProcessCollector(registry=registry)
        self.shared = registry is None
        if not self.shared:
            return
        self._cpu_published = 0.0
        self._cpu = Counter(
            "process_cpu_seconds",
            "CPU seconds of the API processes (exited ones included).",
            registry=None,
        )
        shares: tuple[tuple[str, str, Literal["livesum", "livemin"]], ...] = (
            ("process_resident_memory_bytes", "Resident memory of the live", "livesum"),
            ("process_virtual_memory_bytes", "Virtual memory of the live", "livesum"),
            ("process_open_fds", "Open file descriptors of the live", "livesum"),
            ("process_start_time_seconds", "Start time of the oldest live", "livemin"),
        )
        self._gauges = {
            name: Gauge(name, f"{what} API processes.", registry=None, multiprocess_mode=mode)
            for name, what, mode in shares
        }
        live = Gauge(
            "unlimcall_api_processes",
            "Live API processes.",
            registry=None,
            multiprocess_mode="livesum",
        )
        live.set(1)

    def publish(self) -> None:
        if not self.shared:
            return  # read at scrape by the registry's collector
        readings = {s.name: s.value for family in self._reader.collect() for s in family.samples}
        cpu = readings.get("process_cpu_seconds_total")
        if cpu is not None and cpu > self._cpu_published:
            self._cpu.inc(cpu - self._cpu_published)
            self._cpu_published = cpu
        for name, gauge in self._gauges.items():
            if name in readings:
                gauge.set(readings[name])


class Metrics:
    """An app's metrics: its requests, its loop lag, its process; ``exposition`` is the
    prometheus_client part of ``/metrics`` (this process's, or every process's in
    multiprocess mode)."""

    def __init__(self) -> None:
        self.multiprocess = multiprocess_dir()
        # One registry per app (tests run several apps in one process); none in
        # multiprocess mode, where the values live in the directory's files.
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=False)
        self.requests = RequestMetrics(self.registry)
        self.lag = LoopLag(registry=self.registry)
        self.process = ProcessMetrics(self.registry)
        self._task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        self.requests.publish()
        self.lag.publish()
        self.process.publish()

    def exposition(self) -> str:
        self.publish()
        if self.multiprocess is None:
            assert self.registry is not None
            return generate_latest(self.registry).decode()
        everyone = CollectorRegistry(auto_describe=False)
        _multiprocess_collector(everyone, self.multiprocess)  # registers itself
        return generate_latest(everyone).decode()

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL)
            self.publish()

    def start(self) -> None:
        self.lag.start()
        if self.multiprocess and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._publish_forever(), name="metrics-publish"
            )

    async def stop(self) -> None:
        """The last counts published; in multiprocess mode, this process's live gauges
        dropped from the sums."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.lag.stop()
        if self.multiprocess:
            self.publish()
            _mark_process_dead(os.getpid(), self.multiprocess)


# -- the workers' counters, shared in Redis --------------------------------------------------


class SharedCounters:
    """Counters of a worker process, summed over every worker in a Redis hash
    (``SHARED_KEY``) that any API process reads at scrape. ``track(name, read)``: ``read()``
    gives running totals by outcome; what they grew by is added to the hash every
    ``interval`` seconds, at ``close``, and before a scrape in the same process (``serve``:
    exact at scrape). A round that fails (Redis down) is added by the next one."""

    def __init__(self, redis: Redis, interval: float = PUBLISH_INTERVAL) -> None:
        self.redis = redis
        self.interval = interval
        self._sources: list[tuple[str, Callable[[], Mapping[str, int]]]] = []
        self._sent: dict[str, int] = defaultdict(int)
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def track(self, name: str, read: Callable[[], Mapping[str, int]]) -> None:
        self._sources.append((name, read))

    async def flush(self) -> None:
        async with self._lock:
            totals = {
                f"{name}:{outcome}": n
                for name, read in self._sources
                for outcome, n in read().items()
            }
            grown = {k: n - self._sent[k] for k, n in totals.items() if n > self._sent[k]}
            if not grown:
                return
            pipe = self.redis.pipeline(transaction=False)
            for field, n in grown.items():
                pipe.hincrby(SHARED_KEY, field, n)
            await pipe.execute()
            self._sent.update({k: totals[k] for k in grown})

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            with contextlib.suppress(Exception):  # Redis away: the next round adds it
                await self.flush()

    def start(self) -> None:
        _LOCAL.add(self)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._flush_forever(), name="shared-counters"
            )

    async def close(self) -> None:
        _LOCAL.discard(self)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.flush()


_LOCAL: weakref.WeakSet[SharedCounters] = weakref.WeakSet()
"""The running ``SharedCounters`` of this process (the in-process worker of ``serve``)."""


async def _from_redis(redis: Redis) -> tuple[int, dict[str, int]]:
    """The queue's depth and the workers' counters, in one round trip (this process's
    counters added first)."""
    for counters in list(_LOCAL):
        if counters.redis is redis:
            await counters.flush()
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(QUEUE)
    pipe.hgetall(SHARED_KEY)
    depth, raw = await pipe.execute()
    return int(depth), {k.decode(): int(v) for k, v in raw.items()}


def _counter_lines(
    name: str, help_: str, outcomes: tuple[str, ...], shared: dict[str, int]
) -> list[str]:
    prefix = name.removeprefix("unlimcall_").removesuffix("_total")
    seen = [k.split(":", 1)[1] for k in shared if k.startswith(prefix + ":")]
    return [
        f"# HELP {name} {help_}",
        f"# TYPE {name} counter",
        *(
            f'{name}{{outcome="{_esc(o)}"}} {shared.get(f"{prefix}:{o}", 0)}'
            for o in [*outcomes, *sorted(set(seen) - set(outcomes))]
        ),
    ]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# -- /metrics ------------------------------------------------------------------------------


async def render(rt: Runtime, metrics: Metrics) -> str:
    text = metrics.exposition()
    async with rt.db.read() as conn:
        by_state = (
            await conn.execute(select(calls.c.state, func.count()).group_by(calls.c.state))
        ).all()
        by_status = (
            await conn.execute(
                select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
            )
        ).all()
    lines = [
        "# HELP unlimcall_calls Calls by lifecycle state (shared database).",
        "# TYPE unlimcall_calls gauge",
        *(f'unlimcall_calls{{state="{s}"}} {n}' for s, n in sorted(by_state)),
        "# HELP unlimcall_deliveries Webhook deliveries by status (shared database).",
        "# TYPE unlimcall_deliveries gauge",
        *(f'unlimcall_deliveries{{status="{s}"}} {n}' for s, n in sorted(by_status)),
    ]
    try:
        depth, shared = await _from_redis(rt.redis)
    except Exception:
        lines += [
            "# HELP unlimcall_redis_up Whether Redis answered this scrape.",
            "# TYPE unlimcall_redis_up gauge",
            "unlimcall_redis_up 0",
        ]
    else:
        lines += [
            "# HELP unlimcall_redis_up Whether Redis answered this scrape.",
            "# TYPE unlimcall_redis_up gauge",
            "unlimcall_redis_up 1",
            "# HELP unlimcall_queue_depth Jobs waiting in the arq queue (incl. deferred).",
            "# TYPE unlimcall_queue_depth gauge",
            f"unlimcall_queue_depth {depth}",
            *_counter_lines(
                "unlimcall_delivery_attempts_total",
                "Webhook delivery attempts by outcome (every worker; shared Redis).",
                DELIVERY_OUTCOMES,
                shared,
            ),
            *_counter_lines(
                "unlimcall_jobs_total",
                "arq jobs run by outcome (every worker; shared Redis).",
                JOB_OUTCOMES,
                shared,
            ),
        ]
    return text + "\n".join(lines) + "\n"
