"""The sandbox harness: a real app (Litestar ``AsyncTestClient``) on a real database and a
real Redis, with the in-process arq worker, and the helpers a test story needs."""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import redis.asyncio as aioredis
import uvicorn
from litestar import Litestar

from tests.support.contract import response_hook
from unlimcall_sandbox.cli.serving import KEEP_ALIVE
from unlimcall_sandbox.server.app import create_app
from unlimcall_sandbox.server.settings import ALL_SCOPES, Settings
from unlimcall_sandbox.workers.resolver import Resolver, system_resolver
from unlimcall_sandbox.workers.worker import in_process_worker

ADMIN = "adm_test_" + secrets.token_hex(8)
PG_URL = os.environ.get("UNLIMCALL_TEST_DATABASE_URL")
# A shared Redis is used (by the PostgreSQL half) only when the user says the suite may
# FLUSHDB its databases 1-15 (or the one its URL names); otherwise the embedded one.
REDIS_URL_GIVEN = os.environ.get("UNLIMCALL_TEST_REDIS_URL")
REDIS_FLUSH_ALLOWED = os.environ.get("UNLIMCALL_TEST_REDIS_FLUSH") == "1"
REDIS_URL = REDIS_URL_GIVEN if REDIS_FLUSH_ALLOWED else None
FLUSHED_REDIS_URLS: list[str] = []  # for the summary: what this run flushed
_redis_db = itertools.count(1)
# Databases of the shared Redis held by a sandbox that outlives its test (the session
# ``sandbox``): never handed out again, else a fresh sandbox would FLUSHDB its queue and
# the two workers would run each other's jobs (same seed: the same job ids).
_HELD_REDIS_DBS: dict[int, str] = {}


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asynccontextmanager
async def fresh_database(backend: str, tmp: Path) -> AsyncIterator[str | None]:
    """None for SQLite (the data dir's file); a new, empty PostgreSQL database otherwise."""
    if backend == "sqlite":
        yield None
        return
    assert PG_URL, "postgres backend without UNLIMCALL_TEST_DATABASE_URL"
    name = f"unlimcall_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_pg_dsn(PG_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = PG_URL.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(_pg_dsn(PG_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def fresh_redis_url(backend: str, *, hold: bool = False) -> str | None:
    """SQLite runs with the embedded Redis (None); PostgreSQL with a flushed database of the
    shared Redis when UNLIMCALL_TEST_REDIS_URL is given and UNLIMCALL_TEST_REDIS_FLUSH=1
    allows flushing it — the two deployments users run. Databases 1-15 go round; ``hold``:
    this one is not handed out again while its sandbox runs (``sandbox_for(hold_redis=True)``
    releases it when the sandbox stops)."""
    if backend == "sqlite" or not REDIS_URL:
        return None
    db = next(_redis_db) % 16 or 1
    while db in _HELD_REDIS_DBS:
        db = next(_redis_db) % 16 or 1
    url = f"{REDIS_URL.rstrip('/')}/{db}" if REDIS_URL.count("/") <= 2 else REDIS_URL
    if hold:
        _HELD_REDIS_DBS[db] = url
    client = aioredis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()
    if url not in FLUSHED_REDIS_URLS:
        FLUSHED_REDIS_URLS.append(url)
    return url


def make_settings(
    data_dir: Path, database_url: str | None, redis_url: str | None, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "redis_url": redis_url,
        "admin_token": ADMIN,
        "time_scale": 3600.0,
        "seed": 7,
        "sweep_interval": 0.5,
        "webhook_timeout": 2.0,
        "log_requests": False,
        # Nothing a test does may reach beyond this machine (tests that need another
        # policy say so, and inject a resolver that never looks anything up).
        "webhook_egress": "loopback",
    }
    values.update(overrides)
    return Settings(**values)


class TestWall:
    """Wall time for the sandbox under test (token and OAuth expiries, leases, signature
    timestamps): the real time plus however far a test moved it on."""

    __test__ = False  # not a test class, despite its name

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Sandbox:
    def __init__(self, client: httpx.AsyncClient, app: Litestar, settings: Settings) -> None:
        self.client = client
        self.app = app
        self.settings = settings
        # Wall time of an in-process app (``running``): expiry tests move it on.
        self.wall = TestWall()
        self.base_url = str(client.base_url).rstrip("/")
        self.admin = {"Authorization": f"Bearer {ADMIN}"}

    @property
    def rt(self) -> Any:
        return self.app.state.rt

    # -- control plane ------------------------------------------------------------------
    async def admin_post(self, path: str, body: Any, expect: int = 201) -> Any:
        if path.endswith("/cdrs/generate") and expect == 201:
            return await self.generate_cdrs(path, body)
        r = await self.client.post(f"/_sandbox{path}", json=body, headers=self.admin)
        assert r.status_code == expect, r.text
        return r.json()

    async def generate_cdrs(self, path: str, body: Any, timeout: float = 120.0) -> Any:
        """Start a CDR generation (202, a job) and wait for the job to finish."""
        r = await self.client.post(f"/_sandbox{path}", json=body, headers=self.admin)
        assert r.status_code == 202, r.text
        return await self.wait_job(r.json()["jobId"], timeout)

    async def wait_job(self, job_id: str, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            r = await self.client.get(f"/_sandbox/jobs/{job_id}", headers=self.admin)
            assert r.status_code == 200, r.text
            job = r.json()
            if job["state"] == "done":
                return job
            assert job["state"] != "failed", job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} never finished: {job}")
            await asyncio.sleep(0.02)

    async def account(self, **fields: Any) -> str:
        body = {
            "companyName": "Test Co",
            "primaryContactEmail": "qa@test.example",
            "balance": 100.0,
            **fields,
        }
        return str((await self.admin_post("/accounts", body))["customerId"])

    async def patch_account(self, customer: str, **fields: Any) -> Any:
        r = await self.client.patch(
            f"/_sandbox/accounts/{customer}", json=fields, headers=self.admin
        )
        assert r.status_code == 200, r.text
        return r.json()

    async def token(
        self, customer: str, scopes: list[str] | None = None, expires_in: int | None = None
    ) -> str:
        body: dict[str, Any] = {"scopes": list(ALL_SCOPES) if scopes is None else scopes}
        if expires_in is not None:
            body["expiresIn"] = expires_in
        return str((await self.admin_post(f"/accounts/{customer}/tokens", body))["token"])

    async def token_with_id(self, customer: str, scopes: list[str]) -> tuple[str, str]:
        data = await self.admin_post(f"/accounts/{customer}/tokens", {"scopes": scopes})
        return data["id"], data["token"]

    async def agent(self, customer: str, **fields: Any) -> dict[str, Any]:
        data: dict[str, Any] = await self.admin_post(
            f"/accounts/{customer}/agents", {"label": "Seat", **fields}
        )
        return data

    async def customer_with_agent(self, **fields: Any) -> tuple[str, str, str]:
        """A fresh account, a token with every scope, and a provisioned agent id."""
        customer = await self.account(**fields)
        token = await self.token(customer)
        agent = await self.agent(customer)
        return customer, token, agent["id"]

    async def concurrently(self, coros: list[Any], width: int = 32) -> list[Any]:
        """Run request coroutines ``width`` at a time. (httpcore's pool does work quadratic
        in the requests queued on it; a bounded width keeps the client from being the
        bottleneck of what is meant to load the server.)"""
        gate = asyncio.Semaphore(width)

        async def one(coro: Any) -> Any:
            async with gate:
                return await coro

        return list(await asyncio.gather(*(one(c) for c in coros)))

    # -- /v1 -----------------------------------------------------------------------------
    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def place_call(self, token: str, agent_id: str, to: str, **extra: Any) -> str:
        r = await self.client.post(
            "/v1/calls",
            json={"aiAgentId": agent_id, "toNumber": to, **extra},
            headers=self.bearer(token),
        )
        assert r.status_code == 200, r.text
        return str(r.json()["callId"])

    async def call(self, call_id: str) -> dict[str, Any]:
        r = await self.client.get(f"/_sandbox/calls/{call_id}", headers=self.admin)
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_call(
        self, call_id: str, state: str = "ended", timeout: float = 30.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            data = await self.call(call_id)
            if data["state"] == state:
                return data
            if time.monotonic() > deadline:
                raise AssertionError(f"call {call_id} stuck in {data['state']}: {data}")
            await asyncio.sleep(0.05)

    async def deliveries(self, **params: str) -> list[dict[str, Any]]:
        r = await self.client.get(
            "/_sandbox/deliveries", params={"limit": "1000", **params}, headers=self.admin
        )
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["deliveries"]
        return items

    async def wait_deliveries(
        self, predicate: Any, timeout: float = 30.0, **params: str
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            items = await self.deliveries(**params)
            if predicate(items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"deliveries never matched: {msgspec.json.encode(items)[:2000]!r}"
                )
            await asyncio.sleep(0.05)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port, in this event loop, for as
    long as the context is open; yields its base URL. Lifespan runs as in production."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=KEEP_ALIVE,  # as the CLI serves it
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped during start-up")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@asynccontextmanager
async def running(
    settings: Settings, *, worker: bool = True, resolver: Resolver | None = None
) -> AsyncIterator[Sandbox]:
    """The sandbox as users run it: real HTTP on loopback, real worker, real Redis.
    ``resolver`` replaces the worker's name lookup for webhook targets."""
    lookup = system_resolver if resolver is None else resolver
    app = create_app(
        settings, background=[partial(in_process_worker, resolver=lookup)] if worker else []
    )
    async with (
        serving(app) as base_url,
        httpx.AsyncClient(
            base_url=base_url,
            timeout=30,
            event_hooks={"response": [response_hook]},
            limits=httpx.Limits(max_connections=64),
        ) as client,
    ):
        sandbox = Sandbox(client, app, settings)
        # The app's one clock reads wall time from the test's: expiry tests advance it
        # instead of sleeping.
        app.state.rt.clock.wall = sandbox.wall
        yield sandbox


@asynccontextmanager
async def sandbox_for(
    backend: str,
    tmp: Path,
    *,
    worker: bool = True,
    resolver: Resolver | None = None,
    hold_redis: bool = False,
    **overrides: Any,
) -> AsyncIterator[Sandbox]:
    """``hold_redis``: the sandbox outlives its test (a session or module fixture); its
    Redis database is not handed out again while it runs."""
    async with fresh_database(backend, tmp) as db_url:
        redis_url = await fresh_redis_url(backend, hold=hold_redis)
        settings = make_settings(tmp, db_url, redis_url, **overrides)
        try:
            async with running(settings, worker=worker, resolver=resolver) as sb:
                yield sb
        finally:
            for db in [db for db, url in _HELD_REDIS_DBS.items() if url == redis_url]:
                del _HELD_REDIS_DBS[db]
