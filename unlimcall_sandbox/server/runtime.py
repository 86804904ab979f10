"""Everything one process shares between requests (and with an in-process worker):
settings, engine, clock, token verifier, job queue, rate table. Built at start-up from
the settings, torn down at shutdown; never at import time."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from functools import cached_property
from importlib.resources.abc import Traversable

from arq.connections import ArqRedis
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from unlimcall_sandbox.resources import FIXTURES
from unlimcall_sandbox.server import demo_data
from unlimcall_sandbox.server.auth import TokenVerifier
from unlimcall_sandbox.server.clock import Clock
from unlimcall_sandbox.server.credentials import with_seed
from unlimcall_sandbox.server.db.engine import database_of, dispose, make_engine, write
from unlimcall_sandbox.server.db.migrate import migrate, startup_lock
from unlimcall_sandbox.server.db.port import Database
from unlimcall_sandbox.server.db.tables import clock as clock_table
from unlimcall_sandbox.server.job_queue import JobQueue, connect
from unlimcall_sandbox.server.oauth import TokenEndpoint
from unlimcall_sandbox.server.rating import RateTable, rate_table
from unlimcall_sandbox.server.redis_embed import EmbeddedRedis
from unlimcall_sandbox.server.services.deps import Deps
from unlimcall_sandbox.server.services.faults import FaultBook
from unlimcall_sandbox.server.settings import Settings

log = logging.getLogger("unlimcall")


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    clock: Clock
    verifier: TokenVerifier
    rates: RateTable
    redis: ArqRedis
    jobs: JobQueue
    oauth: TokenEndpoint
    faults: FaultBook
    db: Database
    embedded_redis: EmbeddedRedis | None = None
    demo_customer_id: int | None = None
    started_at: float = field(default_factory=time.time)

    @classmethod
    async def start(cls, settings: Settings, *, embedded_redis: bool = True) -> Runtime:
        settings = with_seed(settings)  # unset: the data dir's own random seed
        rates = load_rate_table()
        engine, clock, demo_id = await prepare_database(settings, rates)
        db = database_of(engine)
        embedded = None
        redis_url = settings.redis_url
        try:
            if not redis_url:
                if not embedded_redis:
                    raise RuntimeError("UNLIMCALL_REDIS_URL is required here")
                embedded = EmbeddedRedis(settings.data_dir)
                redis_url = embedded.start()
            redis = await connect(redis_url)
        except BaseException:  # a failed start leaves nothing running or open
            if embedded is not None:
                await embedded.astop()
            await dispose(engine)
            raise
        return cls(
            settings=settings,
            engine=engine,
            clock=clock,
            verifier=TokenVerifier(db, settings.token_cache_ttl, clock),
            rates=rates,
            redis=redis,
            jobs=JobQueue(redis),
            oauth=TokenEndpoint(settings.oauth_token_ttl, clock),
            faults=FaultBook(db, settings.resolved_seed),
            db=db,
            embedded_redis=embedded,
            demo_customer_id=demo_id,
        )

    @property
    def reads(self) -> Database:
        """Where the hot point reads go (``all`` / ``one_or_none``): the database."""
        return self.db

    @cached_property
    def deps(self) -> Deps:
        """What services are handed besides their unit of work."""
        return Deps(
            clock=self.clock,
            seed=self.settings.resolved_seed,
            rates=self.rates,
            insecure_webhook_hosts=self.settings.insecure_webhook_hosts,
            invalidate_account=self.verifier.invalidate_account,
            hooks_per_account=self.settings.hooks_per_account,
        )

    @property
    def redis_url(self) -> str:
        if self.embedded_redis is not None:
            return self.embedded_redis.url
        assert self.settings.redis_url
        return self.settings.redis_url

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.jobs.drain()
        await self.redis.aclose()
        await dispose(self.engine)
        if self.embedded_redis is not None:
            await self.embedded_redis.astop()


async def prepare_database(
    settings: Settings, rates: RateTable | None = None
) -> tuple[AsyncEngine, Clock, int | None]:
    """Engine, migrations, the shared clock, and the demo dataset in an empty database
    (returns its customer id when it was loaded now). ``rates`` prices the demo CDRs
    (default: the shipped table)."""
    settings = with_seed(settings)
    engine = make_engine(settings)
    demo_id = None
    # One process at a time from the first migration to the demo data: replicas starting
    # together on an empty database must not both insert the clock row or the fixtures.
    async with startup_lock(engine):
        await migrate(engine)
        clock = await load_clock(engine, settings.time_scale)
        if settings.load_fixtures:
            async with write(engine) as conn:
                if await demo_data.is_empty(conn):
                    demo_id = await demo_data.load(
                        conn,
                        clock.now(),
                        settings.resolved_seed,
                        rates or load_rate_table(),
                    )
    return engine, clock, demo_id


def load_rate_table(fixtures: Traversable = FIXTURES) -> RateTable:
    """The rate table and the country names shipped with the package, read once at start
    and handed to whatever rates a call (rating itself reads no files)."""

    def document(name: str) -> dict[str, object]:
        data: dict[str, object] = json.loads((fixtures / name).read_text(encoding="utf-8"))
        return data

    return rate_table(document("rates.json"), document("country_names.json"))


async def load_clock(engine: AsyncEngine, scale: float) -> Clock:
    """The shared clock anchor; re-anchored (continuously) when the scale changed."""
    async with write(engine) as conn:
        row = (await conn.execute(select(clock_table).where(clock_table.c.id == 1))).first()
        if row is None:
            clk = Clock(scale)
            await conn.execute(
                clock_table.insert().values(
                    id=1,
                    anchor_real=clk.anchor_real,
                    anchor_sandbox=clk.anchor_sandbox,
                    scale=scale,
                )
            )
            return clk
        if row.scale == scale:
            return Clock(scale, row.anchor_real, row.anchor_sandbox)
        sandbox_now = Clock(row.scale, row.anchor_real, row.anchor_sandbox).now()
        clk = Clock(scale, None, sandbox_now)  # anchored at this wall moment
        await conn.execute(
            update(clock_table)
            .where(clock_table.c.id == 1)
            .values(anchor_real=clk.anchor_real, anchor_sandbox=clk.anchor_sandbox, scale=scale)
        )
        return clk
