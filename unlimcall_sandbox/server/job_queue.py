"""Enqueueing arq jobs by name. ``server`` never imports ``workers``: it names the jobs.

Jobs are enqueued after the transaction that justifies them commits. When Redis is down
the enqueue is logged and dropped: the database still says the work is due, and the
worker's periodic sweep enqueues it again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms

log = logging.getLogger("unlimcall.jobs")

SIMULATE_CALL = "simulate_call"
DELIVER_WEBHOOK = "deliver_webhook"
DELIVER_EVENT = "deliver_event"
RUN_BULK_JOB = "run_bulk_job"
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


# arq's enqueue_job, in one atomic round trip for any number of jobs: skip a job whose id
# is queued or has a result (arq's uniqueness rule), else store it and schedule it. arq's
# own takes three round trips per job (WATCH, EXISTS, MULTI/EXEC). ARGV: the two key
# prefixes, a MessagePack array of [job id, expiry ms, score] per job (Redis's Lua has
# cmsgpack; it takes no binary strings), then each job's serialized bytes: two arguments
# per job for redis-py to encode, not four.
_ENQUEUE = """
local queued = {}
for i, job in ipairs(cmsgpack.unpack(ARGV[3])) do
  local job_id = job[1]
  local job_key = ARGV[1] .. job_id
  if redis.call('exists', job_key, ARGV[2] .. job_id) == 0 then
    redis.call('psetex', job_key, job[2], ARGV[3 + i])
    redis.call('zadd', KEYS[1], job[3], job_id)
    queued[#queued + 1] = 1
  else
    queued[#queued + 1] = 0
  end
end
return queued
"""
_pack = msgspec.msgpack.Encoder().encode


class JobQueue:
    """Enqueues jobs for every caller of one process through one script call at a time:
    callers that enqueue while a call is in flight (or in the same loop iteration) are
    sent together in the next one."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self._script = redis.register_script(_ENQUEUE)
        self._waiting: list[tuple[list[JobSpec], asyncio.Future[int] | None]] = []
        self._sender: asyncio.Task[None] | None = None

    async def enqueue(self, specs: list[JobSpec]) -> int:
        """Queue ``specs`` (as arq's ``enqueue_job`` would); returns how many were new.
        Redis down: logged, 0 (the database still says the work is due; the sweep
        enqueues it again)."""
        if not specs:
            return 0
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._add(specs, done)
        return await done

    def submit(self, specs: list[JobSpec]) -> None:
        """Queue ``specs`` in the next round trip without waiting for it: what a request
        does once its transaction committed, so that its answer never waits on Redis.
        Lost with the process before it is sent (or Redis down): the sweep enqueues it
        again, as for any lost job."""
        if specs:
            self._add(specs, None)

    def _add(self, specs: list[JobSpec], done: asyncio.Future[int] | None) -> None:
        self._waiting.append((specs, done))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_all())

    async def drain(self) -> None:
        """Send what is still waiting (at shutdown, before Redis is closed)."""
        while self._sender is not None and not self._sender.done():
            await asyncio.shield(self._sender)

    async def _send_all(self) -> None:
        await asyncio.sleep(0)  # whoever enqueues in this loop iteration comes along
        while self._waiting:
            batch, self._waiting = self._waiting, []
            await self._send(batch)

    async def _send(self, batch: list[tuple[list[JobSpec], asyncio.Future[int] | None]]) -> None:
        specs = [spec for group, _ in batch for spec in group]
        try:
            now_ms = timestamp_ms()
            meta: list[tuple[str, int, int]] = []
            jobs: list[bytes] = []
            for spec in specs:
                score = now_ms + (round(spec.delay * 1000) if spec.delay > 0 else 0)
                jobs.append(
                    serialize_job(
                        spec.name,
                        (spec.arg,),
                        {},
                        None,
                        now_ms,
                        serializer=self.redis.job_serializer,
                    )
                )
                meta.append((spec.job_id, score - now_ms + self.redis.expires_extra_ms, score))
            args: list[str | bytes] = [job_key_prefix, result_key_prefix, _pack(meta), *jobs]
            flags: list[int] = await self._script(keys=[QUEUE], args=args)
        except Exception:
            log.warning(
                "could not enqueue %d job(s) (%s ...); the sweep will retry",
                len(specs),
                specs[0].job_id,
            )
            flags = [0] * len(specs)
        at = 0
        for group, done in batch:
            if done is not None and not done.done():  # its caller may have been cancelled
                done.set_result(sum(flags[at : at + len(group)]))
            at += len(group)
