"""Enqueueing arq jobs by name. ``server`` never imports ``workers``: it names the jobs.

Jobs are enqueued after the transaction that justifies them commits. When Redis is down
the enqueue is logged and dropped: the database still says the work is due, and the
worker's periodic sweep enqueues it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from arq.connections import ArqRedis, RedisSettings, create_pool

log = logging.getLogger("unlimcall.jobs")

SIMULATE_CALL = "simulate_call"
DELIVER_WEBHOOK = "deliver_webhook"
QUEUE = "unlimcall:queue"


@dataclass(frozen=True, slots=True)
class JobSpec:
    name: str
    arg: str
    job_id: str
    delay: float = 0.0


def redis_settings(url: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(url)
    settings.conn_timeout = 2
    settings.conn_retries = 2
    return settings


async def connect(url: str) -> ArqRedis:
    return await create_pool(redis_settings(url), default_queue_name=QUEUE)


class JobQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis

    async def enqueue(self, specs: list[JobSpec]) -> None:
        for spec in specs:
            try:
                await self.redis.enqueue_job(
                    spec.name,
                    spec.arg,
                    _job_id=spec.job_id,
                    _defer_by=spec.delay if spec.delay > 0 else None,
                    _queue_name=QUEUE,
                )
            except Exception:  # Redis down: the sweep will re-enqueue from the database.
                log.warning("could not enqueue %s %s; the sweep will retry", spec.name, spec.arg)
