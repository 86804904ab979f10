"""``/metrics`` of one process (``serve``: the API and its in-process worker): the worker's
counters — delivery attempts and jobs by outcome — are in it, exact at scrape, next to the
process's own metrics (issue 17, item 5)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.support.sandbox import Sandbox


async def scrape(sandbox: Sandbox) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await sandbox.client.get("/metrics")
    assert r.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def attempts(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], outcome: str) -> float:
    return samples[("unlimcall_delivery_attempts_total", (("outcome", outcome),))]


async def test_delivery_attempts_and_jobs_by_outcome_are_counted(sandbox: Sandbox) -> None:
    before = await scrape(sandbox)
    customer = await sandbox.account()
    token = await sandbox.token(customer)
    r = await sandbox.client.post(
        "/v1/hooks",
        headers=sandbox.bearer(token),
        json={
            "event": "call.ended",
            "target_url": f"{sandbox.base_url}/_sandbox/inbox/metrics-{customer}",
        },
    )
    hook_id = r.json()["id"]
    await sandbox.admin_post("/events", {"customerId": customer, "event": "call.ended"})
    await sandbox.wait_deliveries(
        lambda items: items and items[0]["status"] == "delivered", hookId=hook_id
    )
    after = await scrape(sandbox)
    assert attempts(after, "delivered") >= attempts(before, "delivered") + 1
    for outcome in ("retry", "permanent", "exhausted"):  # every series, from the start
        assert attempts(after, outcome) >= attempts(before, outcome)
    jobs = ("unlimcall_jobs_total", (("outcome", "complete"),))
    assert after[jobs] >= before[jobs] + 1  # the deliver_event job
    assert ("unlimcall_jobs_total", (("outcome", "failed"),)) in after
    # The process's own, with prometheus_client's names; no *_created series.
    assert after[("process_cpu_seconds_total", ())] > 0
    assert after[("process_resident_memory_bytes", ())] > 0
    assert after[("unlimcall_redis_up", ())] == 1
    assert not [name for name, _ in after if name.endswith("_created")]
