"""``JobQueue.enqueue``: arq's enqueue semantics (unique job ids, deferral, expiry), in
one round trip, against the real Redis of the run — and, on a private Redis, the very
state ``ArqRedis.enqueue_job`` leaves (the Lua copies arq's storage format: pyproject
bounds arq to the versions this test has passed on)."""

from __future__ import annotations

import asyncio
import math
import pickle
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import Job, JobStatus, deserialize_job

from tests.support.sandbox import Sandbox
from unlimcall_sandbox.server.job_queue import QUEUE, JobQueue, JobSpec, connect
from unlimcall_sandbox.server.redis_embed import EmbeddedRedis


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


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[ArqRedis]:
    """An embedded Redis of this test alone (free to flush), through the sandbox's pool."""
    embedded = EmbeddedRedis(tmp_path)
    redis = await connect(embedded.start())
    try:
        yield redis
    finally:
        await redis.aclose()
        embedded.stop()


async def redis_state(redis: ArqRedis) -> dict[bytes, tuple[str, int, Any]]:
    """Every key: (type, PTTL in ms, value — a string's bytes, a zset's member -> score)."""
    state: dict[bytes, tuple[str, int, Any]] = {}
    async for key in redis.scan_iter():
        kind = (await redis.type(key)).decode()
        value: Any
        if kind == "string":
            value = await redis.get(key)
        elif kind == "zset":
            value = dict(await redis.zrange(key, 0, -1, withscores=True))
        else:
            value = f"unexpected {kind}"
        state[key] = (kind, await redis.pttl(key), value)
    return state


async def test_lua_enqueue_leaves_the_redis_state_arqs_enqueue_job_leaves(
    private_redis: ArqRedis,
) -> None:
    redis = private_redis
    specs = [
        JobSpec("simulate_call", "c1", "call:1:step:2"),  # due now
        JobSpec("deliver_webhook", "d7", "delivery:7", delay=0.25),  # ms precision
        JobSpec("deliver_event", "e9", "event:9", delay=3700.0),  # beyond the default expiry
        JobSpec("simulate_call", "c1", "call:1:step:2", delay=5.0),  # a duplicate id: skipped
        JobSpec("deliver_event", "e8", "event:8", delay=1.0),  # has a result: skipped
    ]

    async def given() -> None:
        await redis.flushdb()
        await redis.set(result_key_prefix + "event:8", b"result of an earlier run", px=600_000)

    began = time.monotonic()
    await given()
    queued_by_lua = await JobQueue(redis).enqueue(specs)
    by_lua = await redis_state(redis)

    await given()
    queued_by_arq = 0
    for spec in specs:
        job = await redis.enqueue_job(
            spec.name, spec.arg, _job_id=spec.job_id, _defer_by=spec.delay or None
        )
        queued_by_arq += job is not None
    by_arq = await redis_state(redis)
    # Clocks are read at different moments; nothing can differ by more than this run took.
    slack_ms = math.ceil((time.monotonic() - began) * 1000) + 2

    assert queued_by_lua == queued_by_arq == 3
    assert (
        by_lua.keys()
        == by_arq.keys()
        == {
            job_key_prefix.encode() + job_id.encode()
            for job_id in ("call:1:step:2", "delivery:7", "event:9")
        }
        | {QUEUE.encode(), (result_key_prefix + "event:8").encode()}
    )
    for key, (kind, ttl, value) in by_lua.items():
        arq_kind, arq_ttl, arq_value = by_arq[key]
        assert kind == arq_kind, key
        assert (ttl < 0) == (arq_ttl < 0) and abs(ttl - arq_ttl) <= slack_ms, (key, ttl, arq_ttl)
        if key.startswith(job_key_prefix.encode()):
            # arq's own deserializer reads it; the stored dict is arq's field for field.
            assert deserialize_job(value).function == deserialize_job(arq_value).function
            ours, theirs = pickle.loads(value), pickle.loads(arq_value)  # noqa: S301 - ours
            assert ours.keys() == theirs.keys() == {"t", "f", "a", "k", "et"}
            assert abs(ours.pop("et") - theirs.pop("et")) <= slack_ms
            assert ours == theirs, key
        elif kind == "zset":
            assert value.keys() == arq_value.keys(), key
            for member, score in value.items():
                assert abs(score - arq_value[member]) <= slack_ms, (member, score)
        else:
            assert value == arq_value, key
    # And what they mean: the deferrals and expiries asked for, relative to each job's enqueue.
    queue = by_lua[QUEUE.encode()][2]
    for spec in specs[:3]:
        stored = pickle.loads(by_lua[(job_key_prefix + spec.job_id).encode()][2])  # noqa: S301
        assert queue[spec.job_id.encode()] == stored["et"] + round(spec.delay * 1000)
        ttl = by_lua[(job_key_prefix + spec.job_id).encode()][1]
        expected = round(spec.delay * 1000) + redis.expires_extra_ms
        assert expected - slack_ms <= ttl <= expected


async def test_submitted_jobs_leave_without_a_waiter_and_close_sends_the_rest(
    private_redis: ArqRedis,
) -> None:
    """``submit`` (what a request's transaction hands its jobs to) returns at once; the
    jobs go in the queue's next round trip, and a queue drained at shutdown sends what is
    still waiting instead of dropping it."""
    queue = JobQueue(private_redis)
    specs = [JobSpec("simulate_call", f"c{i}", f"call:{i}:queued", delay=60.0) for i in range(3)]
    queue.submit(specs[:2])
    queue.submit([])
    queue.submit(specs[2:])
    assert await private_redis.zcard(QUEUE) == 0  # nothing sent while this task runs
    await queue.drain()
    queued = {j.decode() for j in await private_redis.zrange(QUEUE, 0, -1)}
    assert queued == {s.job_id for s in specs}
    await queue.drain()  # nothing waiting: returns
