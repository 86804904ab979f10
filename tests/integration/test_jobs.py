"""``JobQueue.enqueue``: arq's enqueue semantics (unique job ids, deferral, expiry), in
one round trip, against the real Redis of the run."""

from __future__ import annotations

import asyncio
import uuid

from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job, JobStatus, deserialize_job

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.job_queue import QUEUE, JobSpec


async def test_enqueue_is_arqs_enqueue_in_one_round_trip(sandbox: Sandbox) -> None:
    rt = sandbox.rt
    redis = rt.jobs.redis
    tag = uuid.uuid4().hex
    # All deferred: the in-process worker must not pick them up meanwhile.
    now_spec = JobSpec("no_such_job", "a1", f"t:{tag}:now", delay=100.0)
    later = JobSpec("no_such_job", "a2", f"t:{tag}:later", delay=3700.0)
    done = JobSpec("no_such_job", "a3", f"t:{tag}:done", delay=100.0)
    await redis.set(result_key_prefix + done.job_id, b"x", ex=60)
    try:
        assert await rt.jobs.enqueue([now_spec, later, done, now_spec]) == 2
        assert await rt.jobs.enqueue([now_spec]) == 0  # the id is taken
        assert await rt.jobs.enqueue([]) == 0
        stored = deserialize_job(await redis.get(job_key_prefix + later.job_id))
        assert (stored.function, stored.args, stored.kwargs, stored.job_try) == (
            "no_such_job",
            ("a2",),
            {},
            None,
        )
        score_now = await redis.zscore(QUEUE, now_spec.job_id)
        score_later = await redis.zscore(QUEUE, later.job_id)
        assert score_now is not None and score_later is not None
        assert abs(score_later - score_now - 3_600_000) < 1000
        ttl_ms = await redis.pttl(job_key_prefix + later.job_id)
        assert 3_700_000 < ttl_ms <= 3_700_000 + redis.expires_extra_ms
        assert await redis.zscore(QUEUE, done.job_id) is None
        job = Job(later.job_id, redis, _queue_name=QUEUE)
        assert await job.status() == JobStatus.deferred
    finally:
        await redis.zrem(QUEUE, now_spec.job_id, later.job_id)
        await redis.delete(
            job_key_prefix + now_spec.job_id,
            job_key_prefix + later.job_id,
            result_key_prefix + done.job_id,
        )


async def test_concurrent_callers_share_a_round_trip_and_keep_their_counts(
    sandbox: Sandbox,
) -> None:
    rt = sandbox.rt
    redis = rt.jobs.redis
    tag = uuid.uuid4().hex
    specs = [JobSpec("no_such_job", str(i), f"t:{tag}:{i}", delay=600.0) for i in range(6)]
    groups = [specs[0:3], specs[2:5], specs[4:6], []]  # overlapping: 2 and 4 twice
    try:
        counts = await asyncio.gather(*(rt.jobs.enqueue(g) for g in groups))
        assert sum(counts) == 6  # each id queued once, whoever came first
        assert counts[0] == 3 and counts[3] == 0
        scores = [await redis.zscore(QUEUE, s.job_id) for s in specs]
        assert None not in scores
    finally:
        await redis.zrem(QUEUE, *(s.job_id for s in specs))
        await redis.delete(*(job_key_prefix + s.job_id for s in specs))
