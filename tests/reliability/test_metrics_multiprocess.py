"""``/metrics`` under ``api --workers 2`` (issue 17, item 5): whichever process answers a
scrape reports the sums over both, so no counter ever goes backwards from one scrape to the
next (it used to read 14, 14, 6, 14: each process its own count), and the request counts
add up to the requests made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.sandbox import ADMIN, fresh_database, fresh_redis_url
from unlimcall_sandbox.server.redis_embed import EmbeddedRedis
from unlimcall_sandbox.testing.launch import LaunchedSandbox, launch_sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

REQUESTS = 60
SCRAPES = 25
SETTLE = 15.0  # seconds for every process's counts to be published (each does every 1 s)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> tuple[Samples, dict[str, str], Samples]:
    """One scrape on a connection of its own: every sample of a counter or a histogram
    (the series that must never go backwards), every family's type, every sample."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:  # fresh connection
        r = await client.get(f"{url}/metrics")
    assert r.status_code == 200, r.text
    monotonic: Samples = {}
    types: dict[str, str] = {}
    every: Samples = {}
    for family in text_string_to_metric_families(r.text):
        types[family.name] = family.type
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            every[key] = s.value
            if family.type in ("counter", "histogram"):
                monotonic[key] = s.value
    return monotonic, types, every


def requests_to(samples: Samples, route: str) -> float:
    return sum(
        v
        for (name, labels), v in samples.items()
        if name == "unlimcall_http_requests_total" and ("route", route) in labels
    )


@asynccontextmanager
async def two_api_processes(backend: str, tmp: Path) -> AsyncIterator[LaunchedSandbox]:
    """``api --workers 2`` on this backend's database (SQLite: the data dir's file, which
    both processes share) and a Redis both share (the embedded one's binary when no test
    Redis is given)."""
    async with AsyncExitStack() as stack:
        env = {"UNLIMCALL_ADMIN_TOKEN": ADMIN}
        db_url = await stack.enter_async_context(fresh_database(backend, tmp))
        if db_url is not None:
            env["UNLIMCALL_DATABASE_URL"] = db_url
        redis_url = await fresh_redis_url(backend)
        if redis_url is None:
            redis = EmbeddedRedis(tmp / "redis")
            redis_url = redis.start()
            stack.callback(redis.stop)
        env["UNLIMCALL_REDIS_URL"] = redis_url
        api = stack.enter_context(
            launch_sandbox(
                env,
                command="api",
                args=["--workers", "2"],
                data_dir=tmp / "api",
                ready=False,
                stop_grace=30,
            )
        )
        await asyncio.to_thread(api.wait_ready, 60.0)
        yield api


async def test_counters_add_up_over_two_api_processes_and_never_go_back(
    backend: str, tmp_path: Path
) -> None:
    async with two_api_processes(backend, tmp_path) as api:
        for _ in range(REQUESTS):  # a connection each: both processes take some
            async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
                assert (await client.get(f"{api.url}/healthz")).status_code == 200
                assert (await client.get(f"{api.url}/no/such/route")).status_code == 404

        previous: Samples = {}
        scrapes = 0
        deadline = time.monotonic() + SETTLE
        while True:
            samples, types, every = await scrape(api.url)
            scrapes += 1
            went_back = {
                key: (previous[key], value)
                for key, value in samples.items()
                if key in previous and value < previous[key]
            }
            assert not went_back, f"scrape {scrapes}: counters went backwards: {went_back}"
            gone = set(previous) - set(samples)
            assert not gone, f"scrape {scrapes}: series vanished: {sorted(gone)[:5]}"
            previous = samples
            if scrapes >= SCRAPES and requests_to(samples, "/healthz") == REQUESTS:
                break
            assert time.monotonic() < deadline or scrapes < SCRAPES, (
                f"/healthz counted {requests_to(samples, '/healthz')} of {REQUESTS} requests "
                f"after {scrapes} scrapes\n{api.log_tail()}"
            )

        # Both processes are in the sums, with the series a single process has.
        assert every[("unlimcall_api_processes", ())] == 2
        assert requests_to(samples, "unmatched") == REQUESTS
        for stat in ("current", "p99", "max"):  # the largest of the live processes'
            assert ("unlimcall_event_loop_lag_seconds", (("stat", stat),)) in every
        assert every[("process_resident_memory_bytes", ())] > 0
        assert every[("process_open_fds", ())] > 0
        assert types["process_cpu_seconds"] == "counter"
        assert samples[("process_cpu_seconds_total", ())] > 0
        assert types["unlimcall_delivery_attempts"] == "counter"
        assert types["unlimcall_jobs"] == "counter"
        assert ("unlimcall_queue_depth", ()) in every
        assert every[("unlimcall_redis_up", ())] == 1
